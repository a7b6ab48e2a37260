//! Encode → decode → reassemble gives back the message: any topic, any
//! msgpack payload (built from the input, up to 140 kB so that it is cut
//! into fragments), any encoder options; fragments delivered in an order
//! and with duplicates chosen by the input.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use netreplay_core::format::reassembly::{Reassembler, ReassemblyOptions};
use netreplay_core::format::wire::{
    self, Datagram, EmptyTopic, EncodeError, Encoder, Plan, RawEncoding, WireError, WireOptions,
    DEFAULT_MTU, MAX_DATAGRAM, MIN_MTU,
};

/// Most fragments a message may need (the reassembler allows 4096): more
/// than 255, so that the fragment numbers take every integer width but u32.
const MAX_TOTAL: usize = 1000;

fn bin_header(out: &mut Vec<u8>, len: usize) {
    if len <= 0xff {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len <= 0xffff {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn str_header(out: &mut Vec<u8>, len: usize) {
    if len <= 31 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Bytes the encoder spends on the topic.
fn topic_len(topic: &str, options: &WireOptions) -> usize {
    let n = topic.len();
    if n == 0 && options.empty_topic == EmptyTopic::Nil {
        return 1;
    }
    let header = match n {
        0..=31 => 1,
        32..=255 if options.raw_encoding == RawEncoding::Bin => 2,
        _ if n <= 0xffff => 3,
        _ => 5,
    };
    header + n
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let mtu = match u.int_in_range(0..=3u8)? {
        0 => DEFAULT_MTU,
        1 => MIN_MTU,
        2 => MAX_DATAGRAM,
        _ => u.int_in_range(MIN_MTU..=MAX_DATAGRAM)?,
    };
    let options = WireOptions {
        mtu,
        raw_encoding: if u.arbitrary()? {
            RawEncoding::Legacy
        } else {
            RawEncoding::Bin
        },
        empty_topic: if u.arbitrary()? {
            EmptyTopic::EmptyString
        } else {
            EmptyTopic::Nil
        },
        validate_payload: u.arbitrary()?,
    };

    // A topic from the input, repeated to reach the str8/str16 sizes and
    // topics too long for a small MTU.
    let len = u.int_in_range(0..=40usize)?;
    let len = len.min(u.len());
    let mut topic = String::from_utf8_lossy(u.bytes(len)?).into_owned();
    let repeat = u.int_in_range(1..=40usize)?;
    topic = topic.repeat(repeat);
    topic.truncate(topic.floor_char_boundary(1000));

    // The payload: one msgpack value around bytes from the input.
    let kind = u.int_in_range(0..=3u8)?;
    let size = match u.int_in_range(0..=3u8)? {
        0 => u.int_in_range(0..=140_000usize)?,
        1 => u.int_in_range(mtu.saturating_sub(64)..=mtu + 64)?,
        _ => u.int_in_range(0..=300usize)?,
    };
    // At most MAX_TOTAL fragments: each carries at least mtu - topic - 21 bytes.
    let per = mtu.saturating_sub(topic.len() + 21).max(1);
    let size = size.min(MAX_TOTAL * per);
    let seed: u8 = u.arbitrary()?;
    let source: SocketAddr = if u.arbitrary()? {
        SocketAddr::from((u.arbitrary::<[u8; 4]>()?, u.arbitrary::<u16>()?))
    } else {
        SocketAddr::from((u.arbitrary::<[u16; 8]>()?, u.arbitrary::<u16>()?))
    };
    // The rest of the input, repeated; every 251st byte marked so that
    // slices of a repeated pattern still differ.
    let mut fill = u.bytes(u.len().min(64))?.to_vec();
    if fill.is_empty() {
        fill.push(seed);
    }
    while fill.len() < 4096 {
        fill.extend_from_within(..); // doubling: few copies however short
    }
    let mut body = Vec::with_capacity(size + fill.len());
    while body.len() < size {
        body.extend_from_slice(&fill);
    }
    body.truncate(size);
    for (k, b) in body.iter_mut().step_by(251).enumerate() {
        *b ^= k as u8;
    }
    let mut payload = Vec::with_capacity(size + 8);
    match kind {
        0 => {
            bin_header(&mut payload, size);
            payload.extend_from_slice(&body);
        }
        1 => {
            str_header(&mut payload, size);
            payload.extend_from_slice(&body);
        }
        2 => {
            // [seed, {seed: bin}]
            payload.extend_from_slice(&[0x92, seed & 0x7f, 0x81, seed & 0x7f]);
            bin_header(&mut payload, size);
            payload.extend_from_slice(&body);
        }
        _ => {
            // The bytes themselves, when they are one msgpack value.
            if wire::check_value(&body).is_ok() {
                payload = body;
            } else {
                payload.push(seed & 0x7f);
            }
        }
    }
    assert_eq!(wire::check_value(&payload), Ok(()));

    let mut encoder = Encoder::new(options).expect("valid options");
    let plan = encoder.plan(&topic, payload.len());
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let encoded = encoder.encode(&topic, &payload, |d| {
        datagrams.push(d.to_vec());
        Ok::<(), ()>(())
    });
    let t_len = topic_len(&topic, &options);
    let n = match encoded {
        Ok(n) => n,
        Err(EncodeError::Wire(WireError::TopicTooLong { .. })) => {
            // Only when the message is not whole and no slice fits.
            assert!(1 + t_len + payload.len() > mtu);
            assert!(1 + t_len + 15 >= mtu, "topic {t_len} mtu {mtu}");
            assert!(plan.is_err());
            return Ok(());
        }
        Err(e) => panic!("encode failed: {e:?}"),
    };
    assert_eq!(n, datagrams.len());
    assert_eq!(
        Ok(n),
        plan.as_ref().map(Plan::datagrams).map_err(Clone::clone)
    );
    for d in &datagrams {
        assert!(d.len() <= mtu, "datagram of {} bytes, mtu {mtu}", d.len());
        // The topic is typed as asked.
        let t = d[1];
        if topic.is_empty() && options.empty_topic == EmptyTopic::Nil {
            assert_eq!(t, 0xc0);
        } else if options.raw_encoding == RawEncoding::Legacy {
            assert!(
                matches!(t, 0xa0..=0xbf | 0xda | 0xdb),
                "legacy topic 0x{t:02x}"
            );
        }
    }

    if n == 1 {
        assert!(matches!(plan, Ok(Plan::Whole { .. })));
        assert_eq!(datagrams[0][0], 0x92);
        assert_eq!(
            wire::decode_datagram(&datagrams[0]),
            Ok(Datagram::Whole {
                topic: &topic,
                payload: &payload
            })
        );
        return Ok(());
    }

    // Fragments: decode them all, then deliver in an order from the input.
    let mut slices = Vec::with_capacity(n);
    for (i, d) in datagrams.iter().enumerate() {
        match wire::decode_datagram(d) {
            Ok(Datagram::Fragment {
                topic: t,
                index,
                total,
                bytes,
            }) => {
                assert_eq!(t, topic);
                assert_eq!(index as usize, i + 1);
                assert_eq!(total as usize, n);
                slices.push(bytes);
            }
            other => panic!("fragment {} of {n} decodes as {other:?}", i + 1),
        }
    }
    let slice = slices[0].len();
    assert!(slices[..n - 1].iter().all(|s| s.len() == slice));
    assert!(slices[n - 1].len() <= slice && !slices[n - 1].is_empty());
    assert_eq!(slices.concat(), payload);

    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = u.int_in_range(0..=i)?;
        order.swap(i, j);
    }
    let mut r = Reassembler::new(ReassemblyOptions::default()).expect("options");
    let mut duplicates = 0;
    let mut done = None;
    for (k, &i) in order.iter().enumerate() {
        let last = k + 1 == n;
        let pushes = if !last && u.ratio(1, 8)? { 2 } else { 1 };
        for _ in 0..pushes {
            let out = r.push(source, &topic, i as u32 + 1, n as u32, slices[i], k as i64);
            if let Some(message) = out {
                assert!(last, "complete after {} of {n} fragments", k + 1);
                assert!(done.is_none());
                done = Some(message);
            }
        }
        duplicates += pushes - 1;
    }
    let message = done.expect("the last fragment completes the message");
    assert_eq!(&*message.topic, topic.as_str());
    assert!(message.payload == payload, "reassembled payload differs");
    assert_eq!(message.source, source);
    assert_eq!(message.fragments as usize, n);
    let stats = r.stats();
    assert_eq!(stats.completed.get(), 1);
    assert_eq!(stats.duplicates.get(), duplicates as u64);
    assert_eq!(stats.fragments.get(), (n + duplicates) as u64);
    assert_eq!(stats.dropped(), 0);
    assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
