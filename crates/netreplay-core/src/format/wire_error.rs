//! What can be wrong with msgpack bytes or an MCL datagram: one error type
//! for both, since a datagram is msgpack.

use std::fmt;

/// Why bytes are not an MCL datagram, or a payload cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The datagram is empty.
    Empty,
    /// The first byte is not a msgpack array header.
    NotAnArray {
        byte: u8,
    },
    /// An array of another length than 2 (whole) or 4 (fragment).
    WrongArrayLength(u64),
    /// The bytes end inside a msgpack value.
    Truncated {
        offset: usize,
    },
    /// A byte that starts no msgpack value (0xc1).
    InvalidByte {
        offset: usize,
        byte: u8,
    },
    /// The topic is not a string, binary or nil.
    TopicType {
        byte: u8,
    },
    TopicNotUtf8,
    /// The fragment number or count is not a positive integer that fits u32.
    FragmentNumber {
        field: &'static str,
    },
    /// `n` is not in `1..=total`.
    FragmentOutOfRange {
        index: u64,
        total: u64,
    },
    /// The fragment slice is neither binary nor a string.
    SliceType {
        byte: u8,
    },
    /// Bytes after the last element of the array.
    TrailingBytes {
        extra: usize,
    },
    /// An empty payload (not a msgpack value).
    EmptyPayload,
    /// The topic leaves no room in a datagram of the MTU for any payload.
    TopicTooLong {
        topic_len: usize,
        mtu: usize,
    },
    /// A payload sent raw (one datagram as it is) larger than a UDP datagram.
    DatagramTooLarge {
        len: usize,
        max: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => f.write_str("empty datagram"),
            WireError::NotAnArray { byte } => write!(
                f,
                "not an MCL datagram: starts with 0x{byte:02x}, not a msgpack array"
            ),
            WireError::WrongArrayLength(n) => write!(
                f,
                "not an MCL datagram: an array of {n} elements (expected [topic, payload] or [topic, n, total, bytes])"
            ),
            WireError::Truncated { offset } => {
                write!(f, "truncated msgpack: the bytes end inside a value at offset {offset}")
            }
            WireError::InvalidByte { offset, byte } => {
                write!(f, "invalid msgpack byte 0x{byte:02x} at offset {offset}")
            }
            WireError::TopicType { byte } => write!(
                f,
                "the topic is not a string (msgpack type byte 0x{byte:02x})"
            ),
            WireError::TopicNotUtf8 => f.write_str("the topic is not valid UTF-8"),
            WireError::FragmentNumber { field } => write!(
                f,
                "fragment field '{field}' is not a positive integer below 2^32"
            ),
            WireError::FragmentOutOfRange { index, total } => {
                write!(f, "fragment number {index} is outside 1..={total}")
            }
            WireError::SliceType { byte } => write!(
                f,
                "the fragment bytes are not msgpack bin or str (type byte 0x{byte:02x})"
            ),
            WireError::TrailingBytes { extra } => {
                write!(f, "{extra} trailing bytes after the message")
            }
            WireError::EmptyPayload => f.write_str("the payload is empty, not a msgpack value"),
            WireError::TopicTooLong { topic_len, mtu } => write!(
                f,
                "a topic of {topic_len} bytes leaves no room for data in a datagram of {mtu} bytes"
            ),
            WireError::DatagramTooLarge { len, max } => write!(
                f,
                "a raw payload of {len} bytes does not fit one UDP datagram (at most {max} bytes)"
            ),
        }
    }
}

impl std::error::Error for WireError {}
