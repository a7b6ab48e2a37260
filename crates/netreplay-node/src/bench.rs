//! Entry points for `bench/`: the engine's own stages timed without a JS
//! call per record, so the micro-benchmarks measure the stage, not N-API.
// Only the N-API registration uses these, and it is not compiled for tests.
#![cfg_attr(test, allow(dead_code))]

use std::path::Path;
use std::sync::Arc;

use napi_derive::napi;
use netreplay_core::engine::{ring, Slot};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::RecordSource;
use netreplay_core::Record;

use crate::errors::{to_napi, Code};

#[napi(object)]
pub struct DecodeCount {
    pub records: f64,
    pub payload_bytes: f64,
}

/// Decode a whole MCL log (file, split set or directory) on this thread and
/// count what came out.
#[napi(catch_unwind)]
pub fn bench_decode_log(path: String) -> napi::Result<DecodeCount, Code> {
    let path = Path::new(&path);
    let options = ReadOptions::default();
    let mut reader = netreplay_core::engine::open_path(path, &options).map_err(to_napi)?;
    let (mut records, mut payload_bytes) = (0u64, 0u64);
    while let Some(record) = reader.next_record().map_err(to_napi)? {
        records += 1;
        payload_bytes += record.payload.len() as u64;
    }
    Ok(DecodeCount {
        records: records as f64,
        payload_bytes: payload_bytes as f64,
    })
}

/// Push `records` records with `payload_bytes`-byte payloads through the
/// engine's SPSC ring (1024 slots) from a producer thread to this one; the
/// nanoseconds it took. Building each record (one allocation when the
/// payload is not empty) is part of the producer's work, as in a replay.
#[napi(catch_unwind)]
pub fn bench_ring(records: u32, payload_bytes: u32) -> f64 {
    let (mut producer, mut consumer) = ring(1024, usize::MAX);
    let topic: Arc<str> = Arc::from("bench");
    let start = std::time::Instant::now();
    let thread = std::thread::spawn(move || {
        for i in 0..records {
            let mut slot = Slot::Record(Record {
                time_ns: i as i64,
                stream: 0,
                topic: topic.clone(),
                payload: vec![0u8; payload_bytes as usize],
            });
            while let Err(back) = producer.push(slot) {
                slot = back;
                std::hint::spin_loop();
            }
        }
    });
    let mut received = 0;
    while received < records {
        match consumer.pop() {
            Some(_) => received += 1,
            None => std::hint::spin_loop(),
        }
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    let _ = thread.join();
    elapsed
}
