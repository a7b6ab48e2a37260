//! Arbitrary push / expire / clear sequences on a Reassembler with small
//! bounds. After every operation the memory bounds hold and the gauges and
//! counters agree with what happened; a completed message is exactly the
//! latest accepted fragments of its key, joined.

#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;

use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use netreplay_core::format::reassembly::{Reassembler, ReassemblyOptions};
use netreplay_core::format::wire;

const SOURCES: [([u8; 4], u16); 3] = [([127, 0, 0, 1], 1), ([127, 0, 0, 1], 2), ([10, 0, 0, 1], 1)];
const TOPICS: [&str; 3] = ["", "a", "b"];

/// Counters, read together.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Counts {
    fragments: u64,
    completed: u64,
    duplicates: u64,
    inconsistent: u64,
    timed_out: u64,
    evicted: u64,
    too_large: u64,
    invalid: u64,
}

fn counts(r: &Reassembler) -> Counts {
    let s = r.stats();
    Counts {
        fragments: s.fragments.get(),
        completed: s.completed.get(),
        duplicates: s.duplicates.get(),
        inconsistent: s.inconsistent.get(),
        timed_out: s.timed_out.get(),
        evicted: s.evicted.get(),
        too_large: s.too_large.get(),
        invalid: s.invalid.get(),
    }
}

fn check_bounds(r: &Reassembler, options: &ReassemblyOptions) {
    assert!(r.pending() <= options.max_pending, "{} sets", r.pending());
    assert!(
        r.pending_bytes() <= options.max_bytes,
        "{} bytes of {}",
        r.pending_bytes(),
        options.max_bytes
    );
    // Every set holds its slot table: no set, no bytes, and the reverse.
    assert_eq!(r.pending() == 0, r.pending_bytes() == 0);
    assert!(r.pending_bytes() >= r.pending());
    let stats = r.stats();
    assert_eq!(stats.pending_sets(), r.pending() as u64);
    assert_eq!(stats.pending_bytes(), r.pending_bytes() as u64);
}

/// Nondecreasing counters.
fn check_monotone(before: &Counts, after: &Counts) {
    let b = [
        before.fragments,
        before.completed,
        before.duplicates,
        before.inconsistent,
        before.timed_out,
        before.evicted,
        before.too_large,
        before.invalid,
    ];
    let a = [
        after.fragments,
        after.completed,
        after.duplicates,
        after.inconsistent,
        after.timed_out,
        after.evicted,
        after.too_large,
        after.invalid,
    ];
    assert!(
        b.iter().zip(&a).all(|(b, a)| a >= b),
        "{before:?} -> {after:?}"
    );
}

type Key = (SocketAddr, &'static str, u32);

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let options = ReassemblyOptions {
        max_pending: u.int_in_range(1..=6usize)?,
        max_bytes: u.int_in_range(1..=2048usize)?,
        timeout_ns: u.int_in_range(1..=1000i64)?,
        max_fragments: u.int_in_range(1..=12u32)?,
    };
    let mut r = Reassembler::new(options).expect("valid options");
    // For each key, the bytes of the latest fragment accepted at each index.
    let mut latest: HashMap<Key, HashMap<u32, Vec<u8>>> = HashMap::new();
    let mut now: i64 = 0;
    let mut pushes = 0u64;
    let mut completions = 0u64;
    let mut ops = 0;
    while !u.is_empty() && ops < 256 {
        ops += 1;
        let before = counts(&r);
        match u.int_in_range(0..=15u8)? {
            0 => {
                let at = match u.int_in_range(0..=2u8)? {
                    0 => u.arbitrary::<i64>()?,
                    1 => now,
                    _ => now.saturating_add(u.int_in_range(0..=2000)?),
                };
                let dropped = r.expire(at);
                let after = counts(&r);
                assert_eq!(after.timed_out - before.timed_out, dropped as u64);
                // Whatever is left is not older than the timeout.
                assert!(r.expire(at) == 0, "second expire at the same time");
            }
            1 => {
                let pending = r.pending() as u64;
                r.clear();
                assert_eq!(counts(&r).evicted - before.evicted, pending);
                assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
            }
            _ => {
                let (ip, port) = SOURCES[u.int_in_range(0..=2usize)?];
                let source = SocketAddr::from((ip, port));
                let topic = TOPICS[u.int_in_range(0..=2usize)?];
                let total = u.int_in_range(0..=options.max_fragments + 2)?;
                let index = u.int_in_range(0..=total + 1)?;
                let len = match u.int_in_range(0..=3u8)? {
                    0 => u.int_in_range(0..=options.max_bytes + 16)?,
                    _ => u.int_in_range(0..=8usize)?,
                };
                let fill: u8 = u.arbitrary()?;
                let mut bytes: Vec<u8> = u.bytes(len.min(u.len()))?.to_vec();
                bytes.resize(len, fill);
                now = match u.int_in_range(0..=7u8)? {
                    0 => u.arbitrary::<i64>()?,
                    1 => now.saturating_sub(u.int_in_range(0..=100)?),
                    _ => now.saturating_add(u.int_in_range(0..=100)?),
                };
                let out = r.push(source, topic, index, total, &bytes, now);
                pushes += 1;
                let after = counts(&r);
                assert_eq!(after.fragments, pushes);
                let rejected = index == 0 || index > total || after.too_large > before.too_large;
                if index == 0 || index > total {
                    assert!(out.is_none());
                    assert_eq!(after.invalid, before.invalid + 1);
                }
                if total > options.max_fragments {
                    assert!(out.is_none());
                    assert!(after.too_large > before.too_large || index == 0 || index > total);
                }
                let key = (source, topic, total);
                if !rejected {
                    latest.entry(key).or_default().insert(index, bytes.clone());
                }
                // One push: at most one outcome for the fragment itself.
                let outcomes = (after.completed - before.completed)
                    + (after.duplicates - before.duplicates)
                    + (after.too_large - before.too_large);
                assert!(outcomes <= 1, "{before:?} -> {after:?}");
                if let Some(message) = out {
                    completions += 1;
                    assert_eq!(message.source, source);
                    assert_eq!(&*message.topic, topic);
                    assert_eq!(message.fragments, total);
                    assert_eq!(wire::check_value(&message.payload), Ok(()));
                    let parts = &latest[&key];
                    let joined: Vec<u8> = (1..=total)
                        .flat_map(|i| parts.get(&i).expect("every index seen").clone())
                        .collect();
                    assert!(joined == message.payload, "joined payload differs");
                    assert_eq!(after.completed, before.completed + 1);
                } else {
                    assert_eq!(after.completed, before.completed);
                }
            }
        }
        let after = counts(&r);
        check_monotone(&before, &after);
        assert_eq!(after.completed, completions);
        check_bounds(&r, &options);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
