//! Reading msgpack without decoding it: where a value ends, whether bytes
//! are exactly one value, and the string and integer reads the MCL
//! datagram decoder needs. Bounds-checked, iterative, never panics.
//!
//! Errors are [`WireError`]s (their msgpack variants: `Truncated`,
//! `InvalidByte`, `EmptyPayload`, `TrailingBytes`), the one error type of
//! the wire format, so a datagram's msgpack and framing errors are one type.

use crate::format::wire_error::WireError;

pub(super) fn byte_at(buf: &[u8], pos: usize) -> Result<u8, WireError> {
    buf.get(pos)
        .copied()
        .ok_or(WireError::Truncated { offset: pos })
}

/// Read a big-endian unsigned integer of `width` bytes at `pos`.
pub(super) fn read_be(buf: &[u8], pos: usize, width: usize) -> Result<u64, WireError> {
    let end = pos
        .checked_add(width)
        .ok_or(WireError::Truncated { offset: pos })?;
    let bytes = buf
        .get(pos..end)
        .ok_or(WireError::Truncated { offset: buf.len() })?;
    Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// `pos + len`, if that is within `buf`.
fn advance(buf: &[u8], pos: usize, len: u64) -> Result<usize, WireError> {
    usize::try_from(len)
        .ok()
        .and_then(|len| pos.checked_add(len))
        .filter(|&end| end <= buf.len())
        .ok_or(WireError::Truncated { offset: buf.len() })
}

/// What one msgpack header says.
enum Head {
    /// A value whose body is `len` bytes after a header of `header` bytes.
    Scalar { header: usize, len: u64 },
    /// A container with `children` values after a header of `header` bytes.
    Container { header: usize, children: u64 },
}

fn head(buf: &[u8], pos: usize) -> Result<Head, WireError> {
    let b = byte_at(buf, pos)?;
    let scalar = |header: usize, len: u64| Ok(Head::Scalar { header, len });
    let sized = |width: usize, extra: u64| -> Result<Head, WireError> {
        let len = read_be(buf, pos + 1, width)?;
        Ok(Head::Scalar {
            header: 1 + width,
            len: len + extra,
        })
    };
    match b {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => scalar(1, 0),
        0x80..=0x8f => Ok(Head::Container {
            header: 1,
            children: 2 * u64::from(b & 0x0f),
        }),
        0x90..=0x9f => Ok(Head::Container {
            header: 1,
            children: u64::from(b & 0x0f),
        }),
        0xa0..=0xbf => scalar(1, u64::from(b & 0x1f)),
        0xc1 => Err(WireError::InvalidByte {
            offset: pos,
            byte: b,
        }),
        0xc4 | 0xd9 => sized(1, 0),
        0xc5 | 0xda => sized(2, 0),
        0xc6 | 0xdb => sized(4, 0),
        0xc7 => sized(1, 1),
        0xc8 => sized(2, 1),
        0xc9 => sized(4, 1),
        0xca => scalar(1, 4),
        0xcb => scalar(1, 8),
        0xcc | 0xd0 => scalar(1, 1),
        0xcd | 0xd1 => scalar(1, 2),
        0xce | 0xd2 => scalar(1, 4),
        0xcf | 0xd3 => scalar(1, 8),
        0xd4 => scalar(1, 2),
        0xd5 => scalar(1, 3),
        0xd6 => scalar(1, 5),
        0xd7 => scalar(1, 9),
        0xd8 => scalar(1, 17),
        0xdc | 0xdd => {
            let width = if b == 0xdc { 2 } else { 4 };
            Ok(Head::Container {
                header: 1 + width,
                children: read_be(buf, pos + 1, width)?,
            })
        }
        0xde | 0xdf => {
            let width = if b == 0xde { 2 } else { 4 };
            Ok(Head::Container {
                header: 1 + width,
                children: 2 * read_be(buf, pos + 1, width)?,
            })
        }
    }
}

/// Per leading byte: the bytes a value of fixed size spans, header
/// included (1 for fixmap and fixarray, whose elements follow), or 0 when
/// the size must be read ([`head`]).
const FIXED_SIZE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 | 0x80..=0x9f => 1,
            0xa0..=0xbf => 1 + (b as u8 & 0x1f),
            0xcc | 0xd0 => 2,
            0xcd | 0xd1 | 0xd4 => 3,
            0xd5 => 4,
            0xca | 0xce | 0xd2 => 5,
            0xd6 => 6,
            0xcb | 0xcf | 0xd3 => 9,
            0xd7 => 10,
            0xd8 => 18,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// Per leading byte: the values a fixmap or fixarray holds (0 otherwise).
const FIXED_CHILDREN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0x80;
    while b < 0xa0 {
        t[b] = if b < 0x90 {
            2 * (b as u8 & 0x0f)
        } else {
            b as u8 & 0x0f
        };
        b += 1;
    }
    t
};

/// The end of the msgpack value that starts at `pos`. Iterative (no
/// recursion, so no stack to exhaust) and bounds-checked. Every payload the
/// MCL reader reads passes here, so values of a size known from their first
/// byte (most of a typical payload) are skipped through two tables; the
/// rest go through `head`.
pub fn skip_value(buf: &[u8], pos: usize) -> Result<usize, WireError> {
    let truncated = || WireError::Truncated { offset: buf.len() };
    let mut pos = pos;
    // Values still to skip. Every step consumes at least one byte, so the
    // loops end within `buf.len()` steps however large the counts read.
    let mut pending: u64 = 1;
    while pending > 0 {
        let b = *buf.get(pos).ok_or_else(truncated)?;
        let size = FIXED_SIZE[usize::from(b)];
        if size != 0 {
            // At most 30 more per byte read: no overflow. `pos` may pass the
            // end here; the next read, or the check at the end, says so.
            pending = pending - 1 + u64::from(FIXED_CHILDREN[usize::from(b)]);
            pos += usize::from(size);
            continue;
        }
        pending -= 1;
        match head(buf, pos)? {
            Head::Scalar { header, len } => {
                pos = advance(buf, pos, header as u64)?;
                pos = advance(buf, pos, len)?;
            }
            Head::Container { header, children } => {
                pos = advance(buf, pos, header as u64)?;
                pending = pending.saturating_add(children);
                // Every pending value needs at least one byte: fail early.
                if pending > (buf.len() - pos) as u64 {
                    return Err(truncated());
                }
            }
        }
    }
    if pos > buf.len() {
        return Err(truncated());
    }
    Ok(pos)
}

/// Whether `bytes` is exactly one well-formed msgpack value.
pub fn check_value(bytes: &[u8]) -> Result<(), WireError> {
    if bytes.is_empty() {
        return Err(WireError::EmptyPayload);
    }
    let end = skip_value(bytes, 0)?;
    if end != bytes.len() {
        return Err(WireError::TrailingBytes {
            extra: bytes.len() - end,
        });
    }
    Ok(())
}

/// A string or binary value at `pos`: (body range, end).
pub(super) fn read_bytes(buf: &[u8], pos: usize) -> Result<Option<(usize, usize)>, WireError> {
    let b = byte_at(buf, pos)?;
    let (header, len) = match b {
        0xa0..=0xbf => (1, u64::from(b & 0x1f)),
        0xc4 | 0xd9 => (2, read_be(buf, pos + 1, 1)?),
        0xc5 | 0xda => (3, read_be(buf, pos + 1, 2)?),
        0xc6 | 0xdb => (5, read_be(buf, pos + 1, 4)?),
        _ => return Ok(None),
    };
    let start = advance(buf, pos, header)?;
    let end = advance(buf, start, len)?;
    Ok(Some((start, end)))
}

/// A non-negative integer at `pos`: (value, end).
pub(super) fn read_uint(buf: &[u8], pos: usize) -> Result<Option<(u64, usize)>, WireError> {
    let b = byte_at(buf, pos)?;
    let (width, signed) = match b {
        0x00..=0x7f => return Ok(Some((u64::from(b), pos + 1))),
        0xcc => (1, false),
        0xcd => (2, false),
        0xce => (4, false),
        0xcf => (8, false),
        0xd0 => (1, true),
        0xd1 => (2, true),
        0xd2 => (4, true),
        0xd3 => (8, true),
        _ => return Ok(None),
    };
    let raw = read_be(buf, pos + 1, width)?;
    let sign_bit = 1u64 << (8 * width - 1);
    if signed && raw & sign_bit != 0 {
        return Ok(None); // negative
    }
    Ok(Some((raw, pos + 1 + width)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `skip_value` before its tables: every byte through `head`.
    fn skip_value_reference(buf: &[u8], pos: usize) -> Result<usize, WireError> {
        let mut pos = pos;
        let mut pending: u64 = 1;
        while pending > 0 {
            if pending > (buf.len().saturating_sub(pos)) as u64 {
                return Err(WireError::Truncated { offset: buf.len() });
            }
            pending -= 1;
            match head(buf, pos)? {
                Head::Scalar { header, len } => {
                    pos = advance(buf, pos, header as u64)?;
                    pos = advance(buf, pos, len)?;
                }
                Head::Container { header, children } => {
                    pos = advance(buf, pos, header as u64)?;
                    pending = pending.saturating_add(children);
                }
            }
        }
        Ok(pos)
    }

    #[test]
    fn the_table_path_of_skip_value_agrees_with_the_reference() {
        // Random byte strings biased towards the short-path types and small
        // lengths, so that most parse some way before they fail or end.
        let alphabet: [u8; 24] = [
            0x00, 0x7f, 0xe0, 0xc0, 0xc2, 0xc3, 0xa3, 0xbf, 0x82, 0x8f, 0x92, 0x9f, 0xca, 0xcb,
            0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd9, 0xc4, 0xc1, 0xdc,
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut agreed_ok = 0;
        for _ in 0..200_000 {
            let len = (next() % 40) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8 % 4
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let (fast, reference) = (skip_value(&buf, 0), skip_value_reference(&buf, 0));
            // The same end, or both an error (which one may differ: the
            // reference stops early when too few bytes remain).
            assert_eq!(fast.as_ref().ok(), reference.as_ref().ok(), "{buf:02x?}");
            agreed_ok += usize::from(fast.is_ok());
        }
        assert!(agreed_ok > 10_000, "too few valid inputs: {agreed_ok}");
    }

    #[test]
    fn skip_covers_every_msgpack_type() {
        let values: Vec<Vec<u8>> = vec![
            vec![0x05],
            vec![0xe0],
            vec![0xc0],
            vec![0xc2],
            vec![0xc3],
            vec![0xcc, 1],
            vec![0xcd, 1, 2],
            vec![0xce, 1, 2, 3, 4],
            vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 1],
            vec![0xd0, 0xff],
            vec![0xd1, 0, 1],
            vec![0xd2, 0, 0, 0, 1],
            vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 1],
            vec![0xca, 0, 0, 0, 0],
            vec![0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0xa2, b'h', b'i'],
            vec![0xd9, 1, b'x'],
            vec![0xda, 0, 1, b'x'],
            vec![0xdb, 0, 0, 0, 1, b'x'],
            vec![0xc4, 1, 9],
            vec![0xc5, 0, 1, 9],
            vec![0xc6, 0, 0, 0, 1, 9],
            vec![0xd4, 1, 2],
            vec![0xd5, 1, 2, 3],
            vec![0xd6, 1, 0, 0, 0, 0],
            vec![0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0xc7, 1, 5, 9],
            vec![0xc8, 0, 1, 5, 9],
            vec![0xc9, 0, 0, 0, 1, 5, 9],
            vec![0x92, 0x01, 0x91, 0x02],
            vec![0xdc, 0, 2, 1, 2],
            vec![0xdd, 0, 0, 0, 1, 1],
            vec![0x81, 0xa1, b'k', 0x80],
            vec![0xde, 0, 1, 1, 2],
            vec![0xdf, 0, 0, 0, 1, 1, 2],
        ];
        for v in &values {
            assert_eq!(skip_value(v, 0), Ok(v.len()), "{v:02x?}");
            for cut in 0..v.len() {
                assert!(skip_value(&v[..cut], 0).is_err(), "{v:02x?} cut at {cut}");
            }
        }
        // Deep nesting costs no stack.
        let mut deep = vec![0x91; 1_000_000];
        deep.push(0x01);
        assert_eq!(skip_value(&deep, 0), Ok(deep.len()));
    }
}
