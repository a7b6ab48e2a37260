//! The MCL network wire format (DESIGN.md, "MCL network wire format").
//!
//! What MCL's `mcl/network/udp.py` (`RawBroadcaster.publish` and
//! `RawListener.__remarshal`, msgpack era) puts on the wire:
//!
//! - one UDP datagram per message, the msgpack array `[topic, payload]`,
//!   when that datagram is at most the MTU (60000 bytes);
//! - otherwise the payload is msgpack-encoded on its own and its bytes are
//!   cut into slices, each sent as `[topic, n, total, slice]` with `n`
//!   counting from 1. The receiver joins the slices in order and decodes them.
//!
//! The logged payload bytes of a record *are* that msgpack encoding, so the
//! encoder here never decodes them: it writes the array header and the topic
//! around the bytes (a whole datagram) or slices them (fragments).
//!
//! Where this module differs from MCL on purpose (receivers cannot tell):
//! - MCL cuts slices of exactly `MTU` bytes, so its fragment datagrams are a
//!   few bytes larger than the MTU, and computes `total = len / MTU + 1`,
//!   which sends an empty last fragment when the length is a multiple of the
//!   MTU. Here every datagram, fragments included, is at most the MTU and
//!   `total = ceil(len / slice)`. The decoder and [`crate::format::reassembly`]
//!   accept both forms.
//! - MCL ran on Python 2 with msgpack's defaults (`use_bin_type=False`), so
//!   its topics and fragment slices are msgpack "raw" (today's str family,
//!   never str8). By default slices are sent as msgpack bin, which every
//!   current msgpack decodes to bytes (a Python 3 decoder would fail to
//!   decode a str slice as UTF-8); [`RawEncoding::Legacy`] reproduces MCL's
//!   bytes exactly. The decoder accepts str and bin in both places.
//! - MCL's broadcaster topic defaults to `None`, i.e. msgpack nil, and MCL's
//!   log writer writes a `None` topic as `''`. So an empty topic is sent as
//!   nil by default ([`EmptyTopic::Nil`]); the decoder reads nil as "".

use crate::format::msgpack::{byte_at, read_be, read_bytes, read_uint};
// Where a msgpack value ends, and whether bytes are one value: used here for
// payloads, and known by these paths outside the crate (the fuzz targets).
pub use crate::format::msgpack::{check_value, skip_value};
pub use crate::format::wire_error::WireError;

/// MCL's `MTU`: the largest datagram sent whole.
pub const DEFAULT_MTU: usize = 60_000;
/// The smallest MTU accepted.
pub const MIN_MTU: usize = 64;
/// The largest UDP payload over IPv4 (65535 − 8 − 20).
pub const MAX_DATAGRAM: usize = 65_507;
/// MCL's default port.
pub const DEFAULT_PORT: u16 = 26_000;

/// How topics and fragment slices are typed in msgpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RawEncoding {
    /// Today's msgpack: slices as bin, topics as str (str8 allowed).
    #[default]
    Bin,
    /// Byte-for-byte what MCL under Python 2 sent: slices and topics as
    /// "raw" (fixstr, str16, str32; never str8 or bin).
    Legacy,
}

/// How an empty topic is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyTopic {
    /// msgpack nil, as MCL's broadcasters (topic `None`) send it.
    #[default]
    Nil,
    /// An empty msgpack string.
    EmptyString,
}

/// Options of the [`Encoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireOptions {
    /// Largest datagram, in bytes ([`MIN_MTU`]..=[`MAX_DATAGRAM`]).
    pub mtu: usize,
    pub raw_encoding: RawEncoding,
    pub empty_topic: EmptyTopic,
    /// Check that each payload is exactly one well-formed msgpack value
    /// before sending it (a linear scan that skips string and binary bodies).
    pub validate_payload: bool,
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            mtu: DEFAULT_MTU,
            raw_encoding: RawEncoding::Bin,
            empty_topic: EmptyTopic::Nil,
            validate_payload: true,
        }
    }
}

impl WireOptions {
    pub fn validate(&self) -> crate::Result<()> {
        if !(MIN_MTU..=MAX_DATAGRAM).contains(&self.mtu) {
            return Err(crate::Error::invalid(
                "mtu",
                format!(
                    "must be between {MIN_MTU} and {MAX_DATAGRAM} bytes, got {}",
                    self.mtu
                ),
            ));
        }
        Ok(())
    }
}

/// A decoded datagram; slices borrow from the datagram bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// `[topic, payload]`: `payload` is the msgpack encoding of the message.
    Whole { topic: &'a str, payload: &'a [u8] },
    /// `[topic, n, total, bytes]`: slice `index` (from 1) of `total`.
    Fragment {
        topic: &'a str,
        index: u32,
        total: u32,
        bytes: &'a [u8],
    },
}

fn read_topic(buf: &[u8], pos: usize) -> Result<(&str, usize), WireError> {
    let b = byte_at(buf, pos)?;
    if b == 0xc0 {
        return Ok(("", pos + 1));
    }
    let (start, end) = read_bytes(buf, pos)?.ok_or(WireError::TopicType { byte: b })?;
    let topic = std::str::from_utf8(&buf[start..end]).map_err(|_| WireError::TopicNotUtf8)?;
    Ok((topic, end))
}

fn read_fragment_number(
    buf: &[u8],
    pos: usize,
    field: &'static str,
) -> Result<(u32, usize), WireError> {
    let (value, end) = read_uint(buf, pos)?.ok_or(WireError::FragmentNumber { field })?;
    let value = u32::try_from(value).map_err(|_| WireError::FragmentNumber { field })?;
    Ok((value, end))
}

/// Decode one datagram. Rejects anything that is not exactly an MCL whole
/// message or fragment; never panics.
pub fn decode_datagram(buf: &[u8]) -> Result<Datagram<'_>, WireError> {
    let first = *buf.first().ok_or(WireError::Empty)?;
    let (len, mut pos) = match first {
        0x90..=0x9f => (u64::from(first & 0x0f), 1),
        0xdc => (read_be(buf, 1, 2)?, 3),
        0xdd => (read_be(buf, 1, 4)?, 5),
        _ => return Err(WireError::NotAnArray { byte: first }),
    };
    if len != 2 && len != 4 {
        return Err(WireError::WrongArrayLength(len));
    }
    let (topic, after_topic) = read_topic(buf, pos)?;
    pos = after_topic;
    let datagram = if len == 2 {
        let end = skip_value(buf, pos)?;
        let payload = &buf[pos..end];
        pos = end;
        Datagram::Whole { topic, payload }
    } else {
        let (index, p) = read_fragment_number(buf, pos, "n")?;
        let (total, p) = read_fragment_number(buf, p, "total")?;
        if index == 0 || total == 0 || index > total {
            return Err(WireError::FragmentOutOfRange {
                index: index.into(),
                total: total.into(),
            });
        }
        let slice_byte = byte_at(buf, p)?;
        let (start, end) = read_bytes(buf, p)?.ok_or(WireError::SliceType { byte: slice_byte })?;
        pos = end;
        Datagram::Fragment {
            topic,
            index,
            total,
            bytes: &buf[start..end],
        }
    };
    if pos != buf.len() {
        return Err(WireError::TrailingBytes {
            extra: buf.len() - pos,
        });
    }
    Ok(datagram)
}

// ---------------------------------------------------------------------------
// msgpack writing
// ---------------------------------------------------------------------------

/// Bytes of the header of a string of `len` bytes.
fn str_header_len(len: usize, encoding: RawEncoding) -> usize {
    match len {
        0..=31 => 1,
        32..=255 if encoding == RawEncoding::Bin => 2,
        _ if len <= 0xffff => 3,
        _ => 5,
    }
}

fn write_str_header(out: &mut Vec<u8>, len: usize, encoding: RawEncoding) {
    match str_header_len(len, encoding) {
        1 => out.push(0xa0 | len as u8),
        2 => out.extend_from_slice(&[0xd9, len as u8]),
        3 => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

fn write_bin_header(out: &mut Vec<u8>, len: usize, encoding: RawEncoding) {
    if encoding == RawEncoding::Legacy {
        return write_str_header(out, len, encoding);
    }
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

fn write_uint(out: &mut Vec<u8>, value: u32) {
    if value < 0x80 {
        out.push(value as u8);
    } else if value <= 0xff {
        out.extend_from_slice(&[0xcc, value as u8]);
    } else if value <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else {
        out.push(0xce);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// How a message goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One datagram of `len` bytes.
    Whole { len: usize },
    /// `total` fragments carrying up to `slice` payload bytes each.
    Fragments { total: u32, slice: usize },
}

impl Plan {
    pub fn datagrams(&self) -> usize {
        match *self {
            Plan::Whole { .. } => 1,
            Plan::Fragments { total, .. } => total as usize,
        }
    }
}

/// A failure of [`Encoder::encode`]: the message cannot be encoded, or the
/// `emit` callback failed (the remaining datagrams are not built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError<E> {
    Wire(WireError),
    Emit(E),
}

/// Builds datagrams into one reusable buffer: after warm-up, encoding a
/// message allocates nothing.
pub struct Encoder {
    options: WireOptions,
    buf: Vec<u8>,
    /// Payloads go out as they are, one datagram each (see [`Encoder::raw`]).
    raw: bool,
}

impl Encoder {
    pub fn new(options: WireOptions) -> crate::Result<Self> {
        options.validate()?;
        Ok(Encoder {
            options,
            buf: Vec::with_capacity(options.mtu),
            raw: false,
        })
    }

    /// An encoder that frames nothing: each payload is one datagram as it
    /// is (a capture's UDP payloads), empty ones included; a payload larger
    /// than [`MAX_DATAGRAM`] is an error. The MCL options do not apply.
    pub fn raw() -> Self {
        Encoder {
            options: WireOptions::default(),
            buf: Vec::new(),
            raw: true,
        }
    }

    pub fn options(&self) -> &WireOptions {
        &self.options
    }

    fn topic_len(&self, topic: &str) -> usize {
        if topic.is_empty() && self.options.empty_topic == EmptyTopic::Nil {
            1
        } else {
            str_header_len(topic.len(), self.options.raw_encoding) + topic.len()
        }
    }

    fn write_topic(&mut self, topic: &str) {
        if topic.is_empty() && self.options.empty_topic == EmptyTopic::Nil {
            self.buf.push(0xc0);
        } else {
            write_str_header(&mut self.buf, topic.len(), self.options.raw_encoding);
            self.buf.extend_from_slice(topic.as_bytes());
        }
    }

    /// How `payload_len` bytes on `topic` will be sent.
    pub fn plan(&self, topic: &str, payload_len: usize) -> Result<Plan, WireError> {
        if payload_len == 0 {
            return Err(WireError::EmptyPayload);
        }
        let mtu = self.options.mtu;
        let topic_len = self.topic_len(topic);
        let whole = 1 + topic_len + payload_len;
        if whole <= mtu {
            return Ok(Plan::Whole { len: whole });
        }
        // Worst-case fragment overhead: array header, topic, two uint32 and
        // a bin32/str32 header.
        let overhead = 1 + topic_len + 5 + 5 + 5;
        let slice = mtu.saturating_sub(overhead);
        if slice == 0 {
            return Err(WireError::TopicTooLong {
                topic_len: topic.len(),
                mtu,
            });
        }
        let total = payload_len.div_ceil(slice);
        let total = u32::try_from(total).map_err(|_| WireError::TopicTooLong {
            topic_len: topic.len(),
            mtu,
        })?;
        Ok(Plan::Fragments { total, slice })
    }

    /// Encode `payload` (the msgpack bytes of the message) on `topic` and
    /// hand each datagram to `emit`, in order. Returns the datagram count.
    pub fn encode<E>(
        &mut self,
        topic: &str,
        payload: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<usize, EncodeError<E>> {
        if self.raw {
            if payload.len() > MAX_DATAGRAM {
                return Err(EncodeError::Wire(WireError::DatagramTooLarge {
                    len: payload.len(),
                    max: MAX_DATAGRAM,
                }));
            }
            emit(payload).map_err(EncodeError::Emit)?;
            return Ok(1);
        }
        if self.options.validate_payload {
            check_value(payload).map_err(EncodeError::Wire)?;
        }
        let plan = self.plan(topic, payload.len()).map_err(EncodeError::Wire)?;
        match plan {
            Plan::Whole { .. } => {
                self.buf.clear();
                self.buf.push(0x92);
                self.write_topic(topic);
                self.buf.extend_from_slice(payload);
                emit(&self.buf).map_err(EncodeError::Emit)?;
                Ok(1)
            }
            Plan::Fragments { total, slice } => {
                for (i, chunk) in payload.chunks(slice).enumerate() {
                    self.buf.clear();
                    self.buf.push(0x94);
                    self.write_topic(topic);
                    write_uint(&mut self.buf, i as u32 + 1);
                    write_uint(&mut self.buf, total);
                    write_bin_header(&mut self.buf, chunk.len(), self.options.raw_encoding);
                    self.buf.extend_from_slice(chunk);
                    emit(&self.buf).map_err(EncodeError::Emit)?;
                }
                Ok(total as usize)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_all(encoder: &mut Encoder, topic: &str, payload: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        encoder
            .encode(topic, payload, |d| {
                out.push(d.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap();
        out
    }

    /// A msgpack bin value of `n` bytes (a payload of any size).
    fn bin_payload(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        write_bin_header(&mut v, n, RawEncoding::Bin);
        v.extend((0..n).map(|i| (i * 7 + 3) as u8));
        v
    }

    #[test]
    fn raw_sends_payloads_as_they_are() {
        let mut enc = Encoder::raw();
        assert_eq!(
            encode_all(&mut enc, "10.0.0.1:26000", b"\x00not msgpack"),
            vec![b"\x00not msgpack".to_vec()]
        );
        assert_eq!(encode_all(&mut enc, "", b""), vec![Vec::<u8>::new()]);
        let big = vec![7u8; MAX_DATAGRAM];
        assert_eq!(encode_all(&mut enc, "t", &big), vec![big.clone()]);
        let err = enc
            .encode("t", &[0; MAX_DATAGRAM + 1], |_| Ok::<(), ()>(()))
            .unwrap_err();
        assert_eq!(
            err,
            EncodeError::Wire(WireError::DatagramTooLarge {
                len: MAX_DATAGRAM + 1,
                max: MAX_DATAGRAM
            })
        );
        assert!(WireError::DatagramTooLarge {
            len: 70000,
            max: MAX_DATAGRAM
        }
        .to_string()
        .contains("at most 65507"));
    }

    #[test]
    fn whole_datagram_wraps_the_payload_verbatim() {
        let mut enc = Encoder::new(WireOptions::default()).unwrap();
        let payload = [0x81, 0xa1, b'a', 0x01]; // {"a": 1}
        let d = encode_all(&mut enc, "cam", &payload);
        assert_eq!(
            d,
            vec![vec![0x92, 0xa3, b'c', b'a', b'm', 0x81, 0xa1, b'a', 0x01]]
        );
        assert_eq!(
            decode_datagram(&d[0]).unwrap(),
            Datagram::Whole {
                topic: "cam",
                payload: &payload
            }
        );
        // Empty topic: nil by default (MCL's topic None), "" on request.
        let d = encode_all(&mut enc, "", &payload);
        assert_eq!(&d[0][..2], &[0x92, 0xc0]);
        let mut enc = Encoder::new(WireOptions {
            empty_topic: EmptyTopic::EmptyString,
            ..WireOptions::default()
        })
        .unwrap();
        let d = encode_all(&mut enc, "", &payload);
        assert_eq!(&d[0][..2], &[0x92, 0xa0]);
        assert!(matches!(
            decode_datagram(&d[0]).unwrap(),
            Datagram::Whole { topic: "", .. }
        ));
    }

    #[test]
    fn mcl_python_bytes_decode() {
        // msgpack.dumps((None, {'data': 0.5})) under Python 2.
        let mut d = vec![0x92, 0xc0, 0x81, 0xa4];
        d.extend_from_slice(b"data");
        d.push(0xcb);
        d.extend_from_slice(&0.5f64.to_be_bytes());
        assert!(matches!(
            decode_datagram(&d).unwrap(),
            Datagram::Whole { topic: "", payload } if payload.len() == 15
        ));
        // A fragment as MCL sends it: raw (str16) slice, MTU-sized.
        let mut f = vec![0x94, 0xa1, b't', 0x01, 0x02, 0xda, 0x00, 0x03, 1, 2, 3];
        assert_eq!(
            decode_datagram(&f).unwrap(),
            Datagram::Fragment {
                topic: "t",
                index: 1,
                total: 2,
                bytes: &[1, 2, 3]
            }
        );
        // MCL's empty trailing fragment.
        f = vec![0x94, 0xc0, 0x02, 0x02, 0xa0];
        assert!(matches!(
            decode_datagram(&f).unwrap(),
            Datagram::Fragment {
                index: 2,
                total: 2,
                bytes: &[],
                ..
            }
        ));
    }

    #[test]
    fn fragments_fit_the_mtu_and_join_to_the_payload() {
        for encoding in [RawEncoding::Bin, RawEncoding::Legacy] {
            let options = WireOptions {
                mtu: 1000,
                raw_encoding: encoding,
                ..WireOptions::default()
            };
            let mut enc = Encoder::new(options).unwrap();
            for n in [900, 985, 986, 2000, 5000, 70_000] {
                let payload = bin_payload(n);
                let datagrams = encode_all(&mut enc, "topic", &payload);
                let plan = enc.plan("topic", payload.len()).unwrap();
                assert_eq!(datagrams.len(), plan.datagrams());
                let mut joined = Vec::new();
                for (i, d) in datagrams.iter().enumerate() {
                    assert!(d.len() <= 1000, "datagram of {} bytes", d.len());
                    match decode_datagram(d).unwrap() {
                        Datagram::Whole { payload: p, .. } => joined.extend_from_slice(p),
                        Datagram::Fragment {
                            index,
                            total,
                            bytes,
                            topic,
                        } => {
                            assert_eq!(topic, "topic");
                            assert_eq!(index as usize, i + 1);
                            assert_eq!(total as usize, datagrams.len());
                            joined.extend_from_slice(bytes);
                        }
                    }
                }
                assert_eq!(joined, payload);
            }
        }
    }

    #[test]
    fn legacy_encoding_is_python2_msgpack_raw() {
        let mut enc = Encoder::new(WireOptions {
            mtu: 100,
            raw_encoding: RawEncoding::Legacy,
            ..WireOptions::default()
        })
        .unwrap();
        let topic = "t".repeat(40);
        let d = encode_all(&mut enc, &topic, &[0x01]);
        // str16, not str8: msgpack-python with use_bin_type=False.
        assert_eq!(&d[0][..4], &[0x92, 0xda, 0x00, 40]);
        let d = encode_all(&mut enc, "t", &bin_payload(120));
        assert_eq!(&d[0][..6], &[0x94, 0xa1, b't', 0x01, 0x02, 0xda]);
    }

    #[test]
    fn default_mtu_keeps_small_messages_whole() {
        let enc = Encoder::new(WireOptions::default()).unwrap();
        assert_eq!(enc.plan("", 59_998).unwrap(), Plan::Whole { len: 60_000 });
        assert!(matches!(
            enc.plan("", 59_999).unwrap(),
            Plan::Fragments { total: 2, .. }
        ));
    }

    #[test]
    fn encoder_rejects_what_it_cannot_send() {
        let mut enc = Encoder::new(WireOptions {
            mtu: 64,
            ..WireOptions::default()
        })
        .unwrap();
        let long = "x".repeat(60);
        let r = enc.encode(&long, &bin_payload(100), |_| Ok::<(), ()>(()));
        assert!(matches!(
            r,
            Err(EncodeError::Wire(WireError::TopicTooLong { .. }))
        ));
        let r = enc.encode("t", &[], |_| Ok::<(), ()>(()));
        assert_eq!(r, Err(EncodeError::Wire(WireError::EmptyPayload)));
        let r = enc.encode("t", &[0x92, 0x01], |_| Ok::<(), ()>(()));
        assert!(matches!(
            r,
            Err(EncodeError::Wire(WireError::Truncated { .. }))
        ));
        let r = enc.encode("t", &[0x01, 0x02], |_| Ok::<(), ()>(()));
        assert_eq!(
            r,
            Err(EncodeError::Wire(WireError::TrailingBytes { extra: 1 }))
        );
        assert!(Encoder::new(WireOptions {
            mtu: 70_000,
            ..WireOptions::default()
        })
        .is_err());
        // An emit failure stops the message.
        let mut calls = 0;
        let r = enc.encode("t", &bin_payload(500), |_| {
            calls += 1;
            Err("boom")
        });
        assert_eq!(r, Err(EncodeError::Emit("boom")));
        assert_eq!(calls, 1);
    }

    #[test]
    fn decoder_names_what_is_wrong() {
        assert_eq!(decode_datagram(&[]), Err(WireError::Empty));
        assert_eq!(
            decode_datagram(b"hello"),
            Err(WireError::NotAnArray { byte: b'h' })
        );
        assert_eq!(
            decode_datagram(&[0x93, 0xc0, 1, 2]),
            Err(WireError::WrongArrayLength(3))
        );
        assert_eq!(
            decode_datagram(&[0x92, 0x01, 0x01]),
            Err(WireError::TopicType { byte: 1 })
        );
        assert_eq!(
            decode_datagram(&[0x92, 0xa1, 0xff, 0x01]),
            Err(WireError::TopicNotUtf8)
        );
        assert_eq!(
            decode_datagram(&[0x92, 0xc0, 0x01, 0x02]),
            Err(WireError::TrailingBytes { extra: 1 })
        );
        assert!(matches!(
            decode_datagram(&[0x92, 0xc0, 0xc1]),
            Err(WireError::InvalidByte {
                offset: 2,
                byte: 0xc1
            })
        ));
        assert!(matches!(
            decode_datagram(&[0x92, 0xc0, 0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(
            decode_datagram(&[0x94, 0xc0, 0x03, 0x02, 0xa0]),
            Err(WireError::FragmentOutOfRange { index: 3, total: 2 })
        );
        assert_eq!(
            decode_datagram(&[0x94, 0xc0, 0x00, 0x02, 0xa0]),
            Err(WireError::FragmentOutOfRange { index: 0, total: 2 })
        );
        assert_eq!(
            decode_datagram(&[0x94, 0xc0, 0xff, 0x02, 0xa0]),
            Err(WireError::FragmentNumber { field: "n" })
        );
        assert_eq!(
            decode_datagram(&[0x94, 0xc0, 0x01, 0xcf, 1, 0, 0, 0, 0, 0, 0, 0, 0xa0]),
            Err(WireError::FragmentNumber { field: "total" })
        );
        assert_eq!(
            decode_datagram(&[0x94, 0xc0, 0x01, 0x01, 0x05]),
            Err(WireError::SliceType { byte: 5 })
        );
        let text = WireError::NotAnArray { byte: b'h' }.to_string();
        assert!(text.contains("0x68"), "{text}");
    }

    /// xorshift: deterministic "random" bytes without a dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn fuzz_random_and_truncated_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut enc = Encoder::new(WireOptions {
            mtu: 200,
            ..WireOptions::default()
        })
        .unwrap();
        let mut valid = Vec::new();
        for n in [1, 10, 150, 600] {
            valid.extend(encode_all(&mut enc, "fuzz", &bin_payload(n)));
        }
        for round in 0..20_000 {
            let mut buf: Vec<u8> = if round % 2 == 0 {
                let len = (rng(&mut seed) % 80) as usize;
                (0..len).map(|_| rng(&mut seed) as u8).collect()
            } else {
                valid[round / 2 % valid.len()].clone()
            };
            // Mutate: flip bytes, truncate, or bias towards msgpack headers.
            if !buf.is_empty() {
                match rng(&mut seed) % 4 {
                    0 => {
                        let i = (rng(&mut seed) as usize) % buf.len();
                        buf[i] = rng(&mut seed) as u8;
                    }
                    1 => buf.truncate((rng(&mut seed) as usize) % buf.len()),
                    2 => buf[0] = [0x92, 0x94, 0xdc, 0xdd][(rng(&mut seed) % 4) as usize],
                    _ => {}
                }
            }
            // Must return, never panic; valid results must be consistent.
            if let Ok(Datagram::Fragment { index, total, .. }) = decode_datagram(&buf) {
                assert!(index >= 1 && index <= total);
            }
            let _ = skip_value(&buf, 0);
            let _ = check_value(&buf);
        }
        for d in &valid {
            assert!(decode_datagram(d).is_ok());
            for cut in 0..d.len() {
                assert!(decode_datagram(&d[..cut]).is_err());
            }
        }
    }
}
