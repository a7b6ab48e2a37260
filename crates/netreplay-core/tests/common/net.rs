//! Helpers of the network tests (`net_*`).

use netreplay_core::engine::{now_ns, Delivery};
use netreplay_core::Record;

/// A msgpack bin value carrying `n` bytes of a pattern (a payload of any size).
pub fn big_payload(n: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0xc6];
    v.extend_from_slice(&(n as u32).to_be_bytes());
    v.extend((0..n).map(|i| ((i * 131) as u8) ^ seed));
    v
}

pub fn record(stream: u32, time_ns: i64, topic: &str, payload: Vec<u8>) -> Record {
    Record {
        time_ns,
        stream,
        topic: topic.into(),
        payload,
    }
}

/// A delivery due now, for a sink driven by hand.
pub fn now() -> Delivery {
    Delivery {
        run: 0,
        deadline_ns: Some(now_ns()),
        lateness_ns: 0,
        ..Delivery::default()
    }
}
