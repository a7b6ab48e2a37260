//! Arbitrary bytes as an MCL datagram and as msgpack: decoding never
//! panics, and what it accepts is consistent with the input and with the
//! encoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netreplay_core::format::wire::{
    self, Datagram, EmptyTopic, EncodeError, Encoder, RawEncoding, WireError, WireOptions,
    MAX_DATAGRAM,
};

/// Whether `inner` lies within `outer` (same allocation, in bounds).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// Error positions name a place in the input.
fn check_error(data: &[u8], err: &WireError) {
    match *err {
        WireError::Truncated { offset } => assert!(offset <= data.len(), "{err:?}"),
        WireError::InvalidByte { offset, byte } => {
            assert_eq!(data.get(offset), Some(&byte), "{err:?}");
            assert_eq!(byte, 0xc1);
        }
        WireError::TrailingBytes { extra } => assert!(extra > 0 && extra < data.len()),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // msgpack scanning from the start and from an offset chosen by the input.
    let whole = wire::skip_value(data, 0);
    match &whole {
        Ok(end) => assert!(*end >= 1 && *end <= data.len(), "end {end}"),
        Err(e) => check_error(data, e),
    }
    match wire::check_value(data) {
        Ok(()) => assert_eq!(whole, Ok(data.len())),
        Err(WireError::EmptyPayload) => assert!(data.is_empty()),
        Err(e) => {
            check_error(data, &e);
            assert!(whole != Ok(data.len()) || data.is_empty());
        }
    }
    if let Some(&b) = data.first() {
        let pos = usize::from(b) % (data.len() + 1);
        match wire::skip_value(data, pos) {
            Ok(end) => assert!(end > pos && end <= data.len()),
            Err(e) => check_error(data, &e),
        }
    }

    match wire::decode_datagram(data) {
        Ok(Datagram::Whole { topic, payload }) => {
            assert!(topic.is_empty() || within(data, topic.as_bytes()));
            assert!(within(data, payload));
            assert_eq!(
                payload.as_ptr() as usize + payload.len(),
                data.as_ptr() as usize + data.len(),
                "the payload ends the datagram"
            );
            assert_eq!(wire::check_value(payload), Ok(()));
            // The whole datagram is itself one msgpack value.
            assert_eq!(wire::check_value(data), Ok(()));
            // Encoding what was decoded gives it back.
            if data.len() <= MAX_DATAGRAM {
                for (raw_encoding, empty_topic) in [
                    (RawEncoding::Bin, EmptyTopic::Nil),
                    (RawEncoding::Legacy, EmptyTopic::EmptyString),
                ] {
                    let mut enc = Encoder::new(WireOptions {
                        mtu: MAX_DATAGRAM,
                        raw_encoding,
                        empty_topic,
                        validate_payload: true,
                    })
                    .expect("encoder");
                    let mut out = Vec::new();
                    let n = match enc.encode(topic, payload, |d| {
                        out.push(d.to_vec());
                        Ok::<(), ()>(())
                    }) {
                        Ok(n) => n,
                        // Only a topic that leaves no room for data may fail.
                        Err(EncodeError::Wire(WireError::TopicTooLong { .. })) => {
                            assert!(topic.len() + 16 >= MAX_DATAGRAM);
                            continue;
                        }
                        Err(e) => panic!("re-encode failed: {e:?}"),
                    };
                    assert_eq!(n, out.len());
                    if n == 1 {
                        assert_eq!(
                            wire::decode_datagram(&out[0]),
                            Ok(Datagram::Whole { topic, payload })
                        );
                    }
                }
            }
        }
        Ok(Datagram::Fragment {
            topic,
            index,
            total,
            bytes,
        }) => {
            assert!(index >= 1 && index <= total, "{index}/{total}");
            assert!(topic.is_empty() || within(data, topic.as_bytes()));
            assert!(within(data, bytes));
            assert_eq!(
                bytes.as_ptr() as usize + bytes.len(),
                data.as_ptr() as usize + data.len(),
                "the slice ends the datagram"
            );
            assert_eq!(wire::check_value(data), Ok(()));
        }
        Err(e) => {
            check_error(data, &e);
            if data.is_empty() {
                assert_eq!(e, WireError::Empty);
            }
        }
    }
});
