//! The payload column: bytes as hex digits, both ways.

const HEX_INVALID: u8 = 0xff;
const HEX_VALUES: [u8; 256] = {
    let mut table = [HEX_INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decode hex text into `out` (appended). Errors give the offending offset.
pub fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    // The fast path only succeeds on valid input; anything else is decoded
    // again by the scalar loop, which finds and names the first bad digit.
    if decode_hex_fast(hex, out) {
        return Ok(());
    }
    decode_hex_scalar(hex, out)
}

/// Sixteen digits at a time with SSE2 (baseline on x86_64, so no runtime
/// detection). `false`, with `out` unchanged, when the input is shorter
/// than 16 digits, of odd length or not all hex.
#[cfg(target_arch = "x86_64")]
fn decode_hex_fast(hex: &[u8], out: &mut Vec<u8>) -> bool {
    use std::arch::x86_64::*;

    let n = hex.len();
    if n < 16 || n % 2 != 0 {
        return false;
    }
    out.reserve(n / 2);
    let base = out.len();
    let src = hex.as_ptr();
    // Every load reads 16 bytes at `src + at` with `at + 16 <= n` (the loop
    // conditions and `n >= 16` guarantee it). Every store writes 16 bytes at
    // `dst + at / 2` with `at + 32 <= n`, or 8 with `at + 16 <= n`.
    // SAFETY: so loads stay inside `hex` and stores inside the `n / 2` bytes
    // reserved past `base`, which nothing else uses (`out` is borrowed
    // exclusively, `hex` is another allocation); all unaligned accesses.
    let complete = unsafe {
        let dst = out.as_mut_ptr().add(base);
        let zero_char = _mm_set1_epi8(b'0' as i8);
        let a_char = _mm_set1_epi8(b'a' as i8);
        let lower_case = _mm_set1_epi8(0x20);
        let nine = _mm_set1_epi8(9);
        let five = _mm_set1_epi8(5);
        let ten = _mm_set1_epi8(10);
        let low_byte = _mm_set1_epi16(0x00ff);
        // 16 digits at `at` -> 8 byte values in the 16-bit lanes, and a
        // mask with a bit set for each digit that is valid hex.
        let decode16 = |at: usize| {
            let v = _mm_loadu_si128(src.add(at).cast::<__m128i>());
            // Unsigned `x <= k` is `min(x, k) == x`; SSE2 has no unsigned compare.
            let digit = _mm_sub_epi8(v, zero_char);
            let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(digit, nine), digit);
            // `| 0x20` folds 'A'-'F' onto 'a'-'f' and nothing else onto them.
            let letter = _mm_sub_epi8(_mm_or_si128(v, lower_case), a_char);
            let is_letter = _mm_cmpeq_epi8(_mm_min_epu8(letter, five), letter);
            let nibbles = _mm_or_si128(
                _mm_and_si128(is_digit, digit),
                _mm_and_si128(is_letter, _mm_add_epi8(letter, ten)),
            );
            let valid = _mm_movemask_epi8(_mm_or_si128(is_digit, is_letter));
            // Lane = high nibble | low nibble << 8 (little endian).
            let bytes = _mm_or_si128(
                _mm_slli_epi16(_mm_and_si128(nibbles, low_byte), 4),
                _mm_srli_epi16(nibbles, 8),
            );
            (bytes, valid)
        };
        let mut at = 0;
        let mut complete = true;
        while at + 32 <= n {
            let (lo, lo_valid) = decode16(at);
            let (hi, hi_valid) = decode16(at + 16);
            if lo_valid & hi_valid != 0xffff {
                complete = false;
                break;
            }
            _mm_storeu_si128(dst.add(at / 2).cast(), _mm_packus_epi16(lo, hi));
            at += 32;
        }
        // 0 to 30 digits left: up to two blocks of 16, the last one ending at
        // `n` (it may overlap digits already done; they decode the same).
        let tail = |at: usize| {
            let (bytes, valid) = decode16(at);
            _mm_storel_epi64(dst.add(at / 2).cast(), _mm_packus_epi16(bytes, bytes));
            valid == 0xffff
        };
        if complete && n - at > 16 {
            complete = tail(at);
            at += 16;
        }
        if complete && at < n {
            complete = tail(n - 16);
        }
        complete
    };
    if complete {
        // SAFETY: the stores above initialised all `n / 2` bytes past `base`
        // (the 32-digit blocks cover digits [0, at), the tail blocks
        // [at, n)), within the capacity reserved above.
        unsafe { out.set_len(base + n / 2) };
    }
    complete
}

#[cfg(not(target_arch = "x86_64"))]
fn decode_hex_fast(_hex: &[u8], _out: &mut Vec<u8>) -> bool {
    false
}

/// The reference decoder, one digit pair at a time; also the one that
/// names the first bad digit.
fn decode_hex_scalar(hex: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    if hex.len() % 2 != 0 {
        return Err(format!(
            "payload hex has an odd length ({} digits)",
            hex.len()
        ));
    }
    out.reserve(hex.len() / 2);
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = HEX_VALUES[pair[0] as usize];
        let lo = HEX_VALUES[pair[1] as usize];
        if hi == HEX_INVALID || lo == HEX_INVALID {
            let at = if hi == HEX_INVALID { 2 * i } else { 2 * i + 1 };
            return Err(format!(
                "payload is not hex: {:?} at column {} of the payload",
                hex[at] as char,
                at + 1
            ));
        }
        out.push((hi << 4) | lo);
    }
    Ok(())
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Append `bytes` to `out` as lowercase hex, as MCL writes payloads.
pub(super) fn encode_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX_DIGITS[(b >> 4) as usize]);
        out.push(HEX_DIGITS[(b & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_and_reports_bad_digits() {
        let mut out = Vec::new();
        decode_hex(b"00ffA0", &mut out).unwrap();
        assert_eq!(out, vec![0, 255, 160]);
        assert!(decode_hex(b"abc", &mut Vec::new())
            .unwrap_err()
            .contains("odd length"));
        let err = decode_hex(b"00zz", &mut Vec::new()).unwrap_err();
        assert!(err.contains("'z'") && err.contains("column 3"), "{err}");
    }

    #[test]
    fn fast_hex_path_matches_the_scalar_decoder() {
        // Every length around the 16- and 32-digit blocks, mixed case.
        let bytes: Vec<u8> = (0..80u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..=bytes.len() {
            let lower: String = bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
            let mixed: String = lower
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 3 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for hex in [lower, mixed] {
                let mut out = vec![0xee]; // appends after what is there
                decode_hex(hex.as_bytes(), &mut out).unwrap();
                assert_eq!(out[0], 0xee);
                assert_eq!(&out[1..], &bytes[..n], "{hex}");
            }
        }
        // Every byte value at every position of inputs that take the fast
        // path: rejected exactly when not hex, with the scalar's message.
        for n in [16usize, 18, 32, 46, 64, 66] {
            let good: Vec<u8> = (0..n).map(|i| b"0123456789abcdefABCDEF"[i % 22]).collect();
            for at in 0..n {
                for b in 0..=255u8 {
                    let mut hex = good.clone();
                    hex[at] = b;
                    let mut fast = Vec::new();
                    let got = decode_hex(&hex, &mut fast);
                    let mut slow = Vec::new();
                    let want = decode_hex_scalar(&hex, &mut slow);
                    assert_eq!(got, want, "n {n} at {at} byte {b:#x}");
                    if got.is_ok() {
                        assert_eq!(fast, slow, "n {n} at {at} byte {b:#x}");
                    } else {
                        assert!(
                            want.unwrap_err().contains(&format!("column {}", at + 1)),
                            "n {n} at {at} byte {b:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn encoded_hex_decodes_to_the_same_bytes() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for n in [0, 1, 7, 8, 15, 16, 17, 33, 256, bytes.len()] {
            let mut text = vec![b'x']; // appends after what is there
            encode_hex(&mut text, &bytes[..n]);
            assert_eq!(text.len(), 1 + 2 * n);
            assert!(text[1..]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
            let mut back = Vec::new();
            decode_hex(&text[1..], &mut back).unwrap();
            assert_eq!(back, &bytes[..n]);
        }
    }
}
