//! Clock datagrams: at each clock tick of a playback, its logical time sent
//! as one MCL datagram, for consumers that follow the replay's time (as
//! `ros2 bag play --clock` publishes `/clock`).

use crate::engine::control::Waiter;
use crate::engine::sink::{Delivery, Sink, TimelineEvent};
use crate::net::udp::{UdpSink, UdpSinkOptions};
use crate::{Record, Result};

/// The topic of clock datagrams.
pub const CLOCK_TOPIC: &str = "/clock";

/// A sink that sends clock ticks, not records: `[topic, {name: "Clock",
/// time: seconds (f64), timeNs: nanoseconds (int)}]` to one destination.
pub struct ClockSink {
    udp: UdpSink,
    topic: std::sync::Arc<str>,
}

impl ClockSink {
    /// Clock datagrams to `options.destination` (its routes are ignored).
    pub fn new(mut options: UdpSinkOptions) -> Result<ClockSink> {
        options.routes.clear();
        Ok(ClockSink {
            udp: UdpSink::new(options, &[])?,
            topic: CLOCK_TOPIC.into(),
        })
    }

    pub fn udp(&self) -> &UdpSink {
        &self.udp
    }
}

/// The msgpack payload of a clock datagram at `time_ns`.
pub fn clock_payload(time_ns: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.push(0x83); // a map of three
    for (key, value) in [("name", None), ("time", Some(0)), ("timeNs", Some(1))] {
        out.push(0xa0 | key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        match value {
            None => {
                out.push(0xa5);
                out.extend_from_slice(b"Clock");
            }
            Some(0) => {
                out.push(0xcb);
                out.extend_from_slice(&(time_ns as f64 / 1e9).to_be_bytes());
            }
            Some(_) => {
                out.push(0xd3);
                out.extend_from_slice(&time_ns.to_be_bytes());
            }
        }
    }
    out
}

impl Sink for ClockSink {
    fn deliver(&mut self, _record: &Record, _delivery: Delivery, _waiter: Waiter<'_>) {}

    fn event(&mut self, _run: u64, event: TimelineEvent, waiter: Waiter<'_>) {
        if let TimelineEvent::Clock { time_ns } = event {
            let record = Record {
                time_ns,
                stream: 0,
                topic: self.topic.clone(),
                payload: clock_payload(time_ns),
            };
            let delivery = Delivery {
                deadline_ns: Some(crate::engine::now_ns()),
                ..Delivery::default()
            };
            self.udp.deliver(&record, delivery, waiter);
        }
    }

    fn take_error(&mut self) -> Option<crate::Error> {
        self.udp.take_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_one_msgpack_map() {
        let payload = clock_payload(1_500_000_000);
        let mut expected = vec![0x83, 0xa4];
        expected.extend_from_slice(b"name");
        expected.push(0xa5);
        expected.extend_from_slice(b"Clock");
        expected.push(0xa4);
        expected.extend_from_slice(b"time");
        expected.push(0xcb);
        expected.extend_from_slice(&1.5f64.to_be_bytes());
        expected.push(0xa6);
        expected.extend_from_slice(b"timeNs");
        expected.push(0xd3);
        expected.extend_from_slice(&1_500_000_000i64.to_be_bytes());
        assert_eq!(payload, expected);
    }
}
