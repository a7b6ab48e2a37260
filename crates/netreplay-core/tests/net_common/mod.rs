//! Helpers shared by the `net_*` integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::RecordSource;
use netreplay_core::{Record, StreamInfo};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mcl/dataset")
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "netreplay-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every record of a reader, and its stream table.
pub fn read_all(mut reader: impl RecordSource) -> (Vec<Record>, Vec<StreamInfo>) {
    let mut records = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        records.push(r);
    }
    (records, reader.streams().to_vec())
}

/// The fixture recording (typed streams, or raw too).
pub fn fixture_records(include_raw: bool) -> (Vec<Record>, Vec<StreamInfo>) {
    let options = ReadOptions {
        include_raw,
        ..ReadOptions::default()
    };
    read_all(netreplay_core::engine::open_directory(&fixtures(), &options).unwrap())
}

/// Poll `done` until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

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
