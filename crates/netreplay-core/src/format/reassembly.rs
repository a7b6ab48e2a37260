//! Joining MCL fragments `[topic, n, total, bytes]` back into messages.
//!
//! MCL's receiver (`RawListener.__remarshal` in `mcl/network/udp.py`) keys a
//! message's fragments on `(sender address, total, topic)`, stores them in
//! slots `n − 1`, joins them when every slot is filled and msgpack-decodes
//! the result; a second fragment for a filled slot means a new message with
//! the same key, so the stale set is discarded and restarted. It has no
//! timeout and (in its last version) no bound.
//!
//! This reassembler keeps that key and that rule, and adds what MCL lacks:
//! - the key holds the sender's port as well as its IP, so two senders on
//!   one host do not mix;
//! - an exact duplicate of a stored fragment (the network duplicated it) is
//!   counted and ignored instead of restarting the set;
//! - a fragment whose size contradicts the set (all but the last fragment
//!   have one size) restarts it, counted as inconsistent; a joined payload
//!   that is not exactly one msgpack value is dropped, counted as invalid;
//! - bounded memory: at most `max_pending` incomplete sets and `max_bytes`
//!   of stored fragments (the oldest set is evicted to make room), at most
//!   `max_fragments` fragments per message, and incomplete sets older than
//!   `timeout_ns` are dropped. Every drop is counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::format::msgpack::check_value;
use crate::Counter;

/// Bounds of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyOptions {
    /// Incomplete messages kept at once.
    pub max_pending: usize,
    /// Bytes of fragments kept at once (slot tables included).
    pub max_bytes: usize,
    /// An incomplete message is dropped this long after its first fragment.
    pub timeout_ns: i64,
    /// Largest `total` accepted.
    pub max_fragments: u32,
}

impl Default for ReassemblyOptions {
    fn default() -> Self {
        ReassemblyOptions {
            max_pending: 64,
            max_bytes: 64 << 20,
            timeout_ns: 2_000_000_000,
            max_fragments: 4096,
        }
    }
}

impl ReassemblyOptions {
    pub fn validate(&self) -> crate::Result<()> {
        if self.max_pending == 0 {
            return Err(crate::Error::invalid("maxPending", "must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(crate::Error::invalid("maxBytes", "must be at least 1"));
        }
        if self.timeout_ns <= 0 {
            return Err(crate::Error::invalid("timeout", "must be > 0"));
        }
        if self.max_fragments == 0 {
            return Err(crate::Error::invalid("maxFragments", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a reassembler did; one writer (the receive thread), any readers.
#[derive(Default)]
pub struct ReassemblyStats {
    /// Fragments handed in.
    pub fragments: Counter,
    /// Messages joined and handed out.
    pub completed: Counter,
    /// Exact duplicates of a stored fragment, ignored.
    pub duplicates: Counter,
    /// Sets restarted because a fragment contradicted them.
    pub inconsistent: Counter,
    /// Incomplete sets dropped after the timeout.
    pub timed_out: Counter,
    /// Incomplete sets dropped to stay within `max_pending` / `max_bytes`.
    pub evicted: Counter,
    /// Fragments of messages larger than the bounds allow, dropped.
    pub too_large: Counter,
    /// Joined payloads that were not one msgpack value, dropped.
    pub invalid: Counter,
    pending_sets: AtomicU64,
    pending_bytes: AtomicU64,
}

impl ReassemblyStats {
    /// Incomplete messages held now.
    pub fn pending_sets(&self) -> u64 {
        self.pending_sets.load(Relaxed)
    }
    /// Bytes held for incomplete messages now.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes.load(Relaxed)
    }
    /// Every message lost to reassembly, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.inconsistent.get()
            + self.timed_out.get()
            + self.evicted.get()
            + self.too_large.get()
            + self.invalid.get()
    }
}

/// A message joined from its fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    pub source: SocketAddr,
    pub topic: Box<str>,
    /// The joined bytes: the msgpack encoding of the message.
    pub payload: Vec<u8>,
    pub fragments: u32,
}

struct PendingSet {
    source: SocketAddr,
    topic: Box<str>,
    total: u32,
    started_ns: i64,
    received: u32,
    /// Size of the fragments before the last one, once one was seen.
    slice_len: Option<usize>,
    slots: Vec<Option<Vec<u8>>>,
    bytes: usize,
}

const SLOT_BYTES: usize = std::mem::size_of::<Option<Vec<u8>>>();

impl PendingSet {
    fn matches(&self, source: SocketAddr, topic: &str, total: u32) -> bool {
        self.total == total && self.source == source && &*self.topic == topic
    }

    /// Whether a fragment of `len` bytes at `index` fits what was seen: all
    /// fragments but the last have one size, the last is not longer.
    fn consistent(&self, index: u32, len: usize) -> bool {
        let is_last = index == self.total;
        match self.slice_len {
            Some(s) if is_last => len <= s,
            Some(s) => len == s,
            None if !is_last => self
                .slots
                .last()
                .and_then(|s| s.as_ref())
                .is_none_or(|last| last.len() <= len),
            None => true,
        }
    }
}

/// Joins fragments; see the module documentation.
pub struct Reassembler {
    options: ReassemblyOptions,
    sets: Vec<PendingSet>,
    bytes: usize,
    stats: Arc<ReassemblyStats>,
}

impl Reassembler {
    pub fn new(options: ReassemblyOptions) -> crate::Result<Self> {
        Self::with_stats(options, Arc::default())
    }

    /// A reassembler that counts into `stats` (shared with readers).
    pub fn with_stats(
        options: ReassemblyOptions,
        stats: Arc<ReassemblyStats>,
    ) -> crate::Result<Self> {
        options.validate()?;
        Ok(Reassembler {
            options,
            sets: Vec::new(),
            bytes: 0,
            stats,
        })
    }

    pub fn stats(&self) -> &Arc<ReassemblyStats> {
        &self.stats
    }

    /// Incomplete messages held.
    pub fn pending(&self) -> usize {
        self.sets.len()
    }

    /// Bytes held for incomplete messages.
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    fn publish_gauges(&self) {
        self.stats
            .pending_sets
            .store(self.sets.len() as u64, Relaxed);
        self.stats.pending_bytes.store(self.bytes as u64, Relaxed);
    }

    fn remove(&mut self, i: usize) -> PendingSet {
        let set = self.sets.swap_remove(i);
        self.bytes -= set.bytes;
        set
    }

    fn oldest_except(&self, keep: Option<usize>) -> Option<usize> {
        self.sets
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != keep)
            .min_by_key(|(_, s)| s.started_ns)
            .map(|(i, _)| i)
    }

    /// Drop incomplete sets whose first fragment is older than the timeout.
    /// Returns how many were dropped.
    pub fn expire(&mut self, now_ns: i64) -> usize {
        let timeout = self.options.timeout_ns;
        let mut dropped = 0;
        let mut i = 0;
        while i < self.sets.len() {
            if now_ns.saturating_sub(self.sets[i].started_ns) > timeout {
                self.remove(i);
                dropped += 1;
            } else {
                i += 1;
            }
        }
        if dropped > 0 {
            self.stats.timed_out.add(dropped as u64);
            self.publish_gauges();
        }
        dropped
    }

    /// Forget every incomplete set (counted as evicted).
    pub fn clear(&mut self) {
        self.stats.evicted.add(self.sets.len() as u64);
        self.sets.clear();
        self.bytes = 0;
        self.publish_gauges();
    }

    /// Hand in fragment `index` (from 1) of `total`; returns the message
    /// when this fragment completes it.
    pub fn push(
        &mut self,
        source: SocketAddr,
        topic: &str,
        index: u32,
        total: u32,
        bytes: &[u8],
        now_ns: i64,
    ) -> Option<Reassembled> {
        self.stats.fragments.add(1);
        let result = self.push_inner(source, topic, index, total, bytes, now_ns);
        self.publish_gauges();
        result
    }

    fn push_inner(
        &mut self,
        source: SocketAddr,
        topic: &str,
        index: u32,
        total: u32,
        bytes: &[u8],
        now_ns: i64,
    ) -> Option<Reassembled> {
        self.expire(now_ns);
        if index == 0 || index > total {
            self.stats.invalid.add(1);
            return None;
        }
        if total > self.options.max_fragments {
            self.stats.too_large.add(1);
            return None;
        }
        let slot_table = total as usize * SLOT_BYTES;
        if slot_table + bytes.len() > self.options.max_bytes {
            self.stats.too_large.add(1);
            return None;
        }
        let slot = (index - 1) as usize;
        let mut found = self
            .sets
            .iter()
            .position(|s| s.matches(source, topic, total));
        if let Some(i) = found {
            let set = &self.sets[i];
            match &set.slots[slot] {
                Some(stored) if stored.as_slice() == bytes => {
                    self.stats.duplicates.add(1);
                    return None;
                }
                Some(_) => {
                    // MCL: a filled slot means a new message under the same key.
                    self.stats.inconsistent.add(1);
                    self.remove(i);
                    found = None;
                }
                None if !set.consistent(index, bytes.len()) => {
                    self.stats.inconsistent.add(1);
                    self.remove(i);
                    found = None;
                }
                None => {}
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                while self.sets.len() >= self.options.max_pending {
                    let Some(old) = self.oldest_except(None) else {
                        break;
                    };
                    self.remove(old);
                    self.stats.evicted.add(1);
                }
                self.sets.push(PendingSet {
                    source,
                    topic: topic.into(),
                    total,
                    started_ns: now_ns,
                    received: 0,
                    slice_len: None,
                    slots: vec![None; total as usize],
                    bytes: slot_table,
                });
                self.bytes += slot_table;
                self.sets.len() - 1
            }
        };
        // Make room: evict other sets, oldest first.
        let mut i = i;
        while self.bytes + bytes.len() > self.options.max_bytes {
            let Some(old) = self.oldest_except(Some(i)) else {
                break;
            };
            self.remove(old);
            self.stats.evicted.add(1);
            // swap_remove moved the last set into `old`.
            if i == self.sets.len() {
                i = old;
            }
        }
        if self.bytes + bytes.len() > self.options.max_bytes {
            // This message alone outgrows the bound.
            self.remove(i);
            self.stats.too_large.add(1);
            return None;
        }
        let set = &mut self.sets[i];
        set.slots[slot] = Some(bytes.to_vec());
        set.bytes += bytes.len();
        set.received += 1;
        if index < total {
            set.slice_len = Some(bytes.len());
        }
        self.bytes += bytes.len();
        if set.received < total {
            return None;
        }
        let set = self.remove(i);
        let mut payload = Vec::with_capacity(set.bytes - slot_table);
        for part in set.slots.into_iter().flatten() {
            payload.extend_from_slice(&part);
        }
        if check_value(&payload).is_err() {
            self.stats.invalid.add(1);
            return None;
        }
        self.stats.completed.add(1);
        Some(Reassembled {
            source: set.source,
            topic: set.topic,
            payload,
            fragments: total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A msgpack bin value of `n` bytes, cut into slices of `slice` bytes.
    fn message(n: usize, slice: usize, seed: u8) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut payload = vec![0xc6];
        payload.extend_from_slice(&(n as u32).to_be_bytes());
        payload.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        let parts = payload.chunks(slice).map(<[u8]>::to_vec).collect();
        (payload, parts)
    }

    #[test]
    fn joins_out_of_order_and_interleaved() {
        let mut r = Reassembler::new(ReassemblyOptions::default()).unwrap();
        let (pa, fa) = message(1000, 300, 1);
        let (pb, fb) = message(1000, 300, 2);
        let total = fa.len() as u32;
        // B from another sender, interleaved with A, both out of order.
        let mut done = Vec::new();
        for k in (0..fa.len()).rev() {
            done.extend(r.push(addr(1), "t", k as u32 + 1, total, &fa[k], 0));
            done.extend(r.push(addr(2), "t", k as u32 + 1, total, &fb[k], 0));
        }
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].payload, pa);
        assert_eq!(done[1].payload, pb);
        assert_eq!(done[1].source, addr(2));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.pending_bytes(), 0);
        assert_eq!(r.stats().completed.get(), 2);
    }

    #[test]
    fn duplicates_are_ignored_and_counted() {
        let mut r = Reassembler::new(ReassemblyOptions::default()).unwrap();
        let (p, f) = message(500, 200, 3);
        let total = f.len() as u32;
        assert!(r.push(addr(1), "t", 1, total, &f[0], 0).is_none());
        assert!(r.push(addr(1), "t", 1, total, &f[0], 0).is_none());
        assert!(r.push(addr(1), "t", 2, total, &f[1], 0).is_none());
        let done = r.push(addr(1), "t", 3, total, &f[2], 0).unwrap();
        assert_eq!(done.payload, p);
        assert_eq!(r.stats().duplicates.get(), 1);
        // A late duplicate after completion starts a set that times out.
        assert!(r.push(addr(1), "t", 2, total, &f[1], 10).is_none());
        assert_eq!(r.expire(10 + 3_000_000_000), 1);
        assert_eq!(r.stats().timed_out.get(), 1);
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn a_lost_fragment_times_out_without_leaking() {
        let mut r = Reassembler::new(ReassemblyOptions {
            timeout_ns: 1_000,
            ..ReassemblyOptions::default()
        })
        .unwrap();
        let (_, f) = message(1000, 300, 4);
        let total = f.len() as u32;
        for (k, part) in f.iter().enumerate().skip(1) {
            assert!(r.push(addr(1), "t", k as u32 + 1, total, part, 0).is_none());
        }
        assert_eq!(r.pending(), 1);
        assert!(r.pending_bytes() > 700);
        assert_eq!(r.stats().pending_sets(), 1);
        assert_eq!(r.expire(500), 0);
        assert_eq!(r.expire(2_000), 1);
        assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
        assert_eq!(r.stats().pending_bytes(), 0);
        assert_eq!(r.stats().dropped(), 1);
    }

    #[test]
    fn a_new_message_under_the_same_key_restarts_the_set() {
        let mut r = Reassembler::new(ReassemblyOptions::default()).unwrap();
        let (_, old) = message(500, 200, 5);
        let (p, new) = message(500, 200, 6);
        let total = old.len() as u32;
        r.push(addr(1), "t", 1, total, &old[0], 0);
        r.push(addr(1), "t", 2, total, &old[1], 0);
        // The new message's first fragment clobbers the stale set (as in MCL).
        for (k, part) in new.iter().enumerate() {
            let done = r.push(addr(1), "t", k as u32 + 1, total, part, 1);
            if k + 1 == new.len() {
                assert_eq!(done.unwrap().payload, p);
            }
        }
        assert_eq!(r.stats().inconsistent.get(), 1);
        // A size that contradicts the set restarts it too.
        r.push(addr(1), "t", 1, 3, &[0u8; 200], 2);
        r.push(addr(1), "t", 2, 3, &[0u8; 150], 2);
        assert_eq!(r.stats().inconsistent.get(), 2);
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn bounds_evict_the_oldest_and_refuse_the_huge() {
        let mut r = Reassembler::new(ReassemblyOptions {
            max_pending: 2,
            max_bytes: 10_000,
            max_fragments: 100,
            ..ReassemblyOptions::default()
        })
        .unwrap();
        r.push(addr(1), "a", 1, 3, &[1; 100], 0);
        r.push(addr(1), "b", 1, 3, &[1; 100], 1);
        r.push(addr(1), "c", 1, 3, &[1; 100], 2);
        assert_eq!(r.pending(), 2);
        assert_eq!(r.stats().evicted.get(), 1);
        // Bytes: a big fragment evicts the others.
        r.push(addr(1), "d", 1, 2, &[1; 9_900], 3);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.stats().evicted.get(), 3);
        // Too many fragments, or one message beyond max_bytes.
        assert!(r.push(addr(1), "e", 1, 1000, &[1; 10], 4).is_none());
        assert!(r.push(addr(1), "e", 1, 2, &[1; 20_000], 4).is_none());
        assert_eq!(r.stats().too_large.get(), 2);
        assert!(r.pending_bytes() <= 10_000);
    }

    #[test]
    fn garbage_after_joining_is_dropped() {
        let mut r = Reassembler::new(ReassemblyOptions::default()).unwrap();
        assert!(r.push(addr(1), "t", 1, 2, &[0x92, 0x01], 0).is_none());
        assert!(r.push(addr(1), "t", 2, 2, &[0x02, 0x03], 0).is_none());
        assert_eq!(r.stats().invalid.get(), 1);
        // MCL's empty trailing fragment joins fine.
        r.push(addr(1), "t", 1, 2, &[0x92, 0x01, 0x02], 0);
        let done = r.push(addr(1), "t", 2, 2, &[], 0).unwrap();
        assert_eq!(done.payload, vec![0x92, 0x01, 0x02]);
        // A single-fragment message completes at once.
        assert!(r.push(addr(1), "t", 1, 1, &[0x05], 0).is_some());
        assert_eq!(r.pending(), 0);
    }
}
