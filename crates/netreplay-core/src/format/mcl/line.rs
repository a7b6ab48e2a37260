//! A record line, read and written: elapsed seconds, the quoted topic, the
//! payload as hex.
//!
//! MCL writes `'%1.5f' % elapsed` right-justified to 12 characters, 4
//! spaces, the topic as `'%s'` left-justified to 8, 4 spaces, the payload as
//! lowercase hex, `\n`. A topic containing `'`, `\` or control characters
//! is written here as a Python string literal (MCL wrote `'%s'`, which no
//! reader can parse back); the reader takes any Python `repr` of a string.

use std::io::Write;

use crate::format::mcl::hex::encode_hex;
use crate::record::is_log_time;

/// Width of the time column.
pub(super) const TIME_PADDING: usize = 12;
/// Width of the topic column.
const TOPIC_PADDING: usize = 8;

/// Elapsed seconds as text to integer nanoseconds, exactly for up to nine
/// decimals (what MCL writes); other finite forms go through `f64`.
pub fn parse_time_ns(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut whole: i64 = 0;
    let mut frac: i64 = 0;
    let mut frac_digits = 0u32;
    let mut seen_dot = false;
    let mut seen_digit = false;
    let mut simple = true;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = i64::from(b - b'0');
                if seen_dot {
                    if frac_digits < 9 {
                        frac = frac * 10 + d;
                        frac_digits += 1;
                    } else if frac_digits == 9 {
                        // Round half up on the tenth decimal, ignore the rest.
                        if d >= 5 {
                            frac += 1;
                        }
                        frac_digits += 1;
                    }
                } else {
                    whole = whole.checked_mul(10)?.checked_add(d)?;
                    if whole > i64::MAX / 1_000_000_000 - 1 {
                        return None;
                    }
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => {
                simple = false;
                break;
            }
        }
    }
    if simple {
        if !seen_digit {
            return None;
        }
        let scale = 10i64.pow(9 - frac_digits.min(9));
        let ns = whole * 1_000_000_000 + frac * scale;
        let ns = if negative { -ns } else { ns };
        return is_log_time(ns).then_some(ns);
    }
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    let ns = (value * 1e9).round();
    // `as` saturates: a value out of range stays out of range.
    (value.is_finite() && is_log_time(ns as i64)).then_some(ns as i64)
}

/// `10^(9 - k)`: the scale of a fraction with `k` decimals, in nanoseconds.
const FRAC_SCALE: [i64; 10] = [
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// [`parse_time_ns`] for the form MCL writes, `<digits>.<digits>` (at most
/// nine of each) followed by whitespace or the end, with the length it
/// spans; `None` for any other form, which the caller parses the general
/// way. It spares the separate scan for the end of the column and the
/// general parser's per-digit checks.
pub(super) fn parse_plain_time(line: &[u8]) -> Option<(i64, usize)> {
    let mut whole: i64 = 0;
    let mut i = 0;
    while i < 9 {
        match line.get(i) {
            Some(&b @ b'0'..=b'9') => whole = whole * 10 + i64::from(b - b'0'),
            _ => break,
        }
        i += 1;
    }
    if i == 0 || line.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    let frac_start = i;
    let mut frac: i64 = 0;
    while i - frac_start < 9 {
        match line.get(i) {
            Some(&b @ b'0'..=b'9') => frac = frac * 10 + i64::from(b - b'0'),
            _ => break,
        }
        i += 1;
    }
    let frac_digits = i - frac_start;
    // A tenth decimal (rounding) or anything but whitespace: the general way.
    if frac_digits == 0 || line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
        return None;
    }
    Some((whole * 1_000_000_000 + frac * FRAC_SCALE[frac_digits], i))
}

/// The time column at the start of a record line (leading blanks already
/// trimmed): the time and the bytes it spans. The plain form first, then
/// any other form [`parse_time_ns`] takes. The reader decodes records with
/// it and seeks with it, parsing only this column of the lines it probes.
pub(super) fn parse_line_time(line: &[u8]) -> Option<(i64, usize)> {
    if let Some(parsed) = parse_plain_time(line) {
        return Some(parsed);
    }
    let time_end = line
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(line.len());
    Some((parse_time_ns(&line[..time_end])?, time_end))
}

/// Decode a topic written as a Python `repr` of a string: `''`, `'abc'`,
/// `"it's"`, with backslash escapes. Returns the topic and the bytes consumed.
pub fn parse_topic(text: &[u8]) -> std::result::Result<(String, usize), String> {
    let mut start = 0;
    // Python 2 unicode/bytes prefixes.
    if matches!(text.first(), Some(b'u') | Some(b'b')) {
        start = 1;
    }
    let quote = match text.get(start) {
        Some(&q @ (b'\'' | b'"')) => q,
        _ => return Err("topic is not a quoted string".into()),
    };
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < text.len() {
        let b = text[i];
        if b == quote {
            let topic = String::from_utf8(out).map_err(|_| "topic is not UTF-8".to_string())?;
            return Ok((topic, i + 1));
        }
        if b == b'\\' {
            let esc = *text.get(i + 1).ok_or("topic ends inside an escape")?;
            i += 2;
            match esc {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'0' => out.push(0),
                b'x' | b'u' | b'U' => {
                    let width = match esc {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let digits = text
                        .get(i..i + width)
                        .ok_or("topic ends inside an escape")?;
                    let code = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|s| u32::from_str_radix(s, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or("invalid escape in topic")?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(code.encode_utf8(&mut buf).as_bytes());
                    i += width;
                }
                other => out.push(other),
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    Err("topic has no closing quote".into())
}

/// Elapsed nanoseconds as MCL writes them: Python's `'%1.5f'` of the
/// elapsed seconds (microsecond resolution, as `timedelta.total_seconds()`),
/// right-justified to 12 characters.
pub fn format_elapsed(out: &mut Vec<u8>, elapsed_ns: i64) {
    let micros = (i128::from(elapsed_ns) + 500).div_euclid(1000);
    let seconds = micros as f64 / 1e6;
    // Rust's `{:.5}` rounds the exact binary value, ties to even: the same
    // digits as Python's correctly rounded `%f`.
    let _ = write!(out, "{seconds:>TIME_PADDING$.5}");
}

fn needs_literal(topic: &str) -> bool {
    topic
        .chars()
        .any(|c| c == '\'' || c == '\\' || c.is_control())
}

/// A topic as MCL writes it (`'%s'`), or as a Python string literal when
/// the plain form could not be read back; left-justified to 8 bytes.
pub fn format_topic(out: &mut Vec<u8>, topic: &str) {
    let start = out.len();
    if !needs_literal(topic) {
        out.push(b'\'');
        out.extend_from_slice(topic.as_bytes());
        out.push(b'\'');
    } else {
        let quote = if topic.contains('\'') && !topic.contains('"') {
            '"'
        } else {
            '\''
        };
        let mut text = String::with_capacity(topic.len() + 8);
        text.push(quote);
        for c in topic.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\r' => text.push_str("\\r"),
                '\t' => text.push_str("\\t"),
                c if c == quote => {
                    text.push('\\');
                    text.push(c);
                }
                c if c.is_control() => {
                    let _ =
                        std::fmt::Write::write_fmt(&mut text, format_args!("\\x{:02x}", c as u32));
                }
                c => text.push(c),
            }
        }
        text.push(quote);
        out.extend_from_slice(text.as_bytes());
    }
    let written = out.len() - start;
    out.resize(out.len() + TOPIC_PADDING.saturating_sub(written), b' ');
}

/// One record line, `\n` included.
pub fn format_line(out: &mut Vec<u8>, elapsed_ns: i64, topic: &str, payload: &[u8]) {
    format_elapsed(out, elapsed_ns);
    out.extend_from_slice(b"    ");
    format_topic(out, topic);
    out.extend_from_slice(b"    ");
    out.reserve(payload.len() * 2 + 1);
    encode_hex(out, payload);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parses_exactly() {
        assert_eq!(parse_time_ns(b"0.01000"), Some(10_000_000));
        assert_eq!(parse_time_ns(b"10.00000"), Some(10_000_000_000));
        assert_eq!(parse_time_ns(b"1"), Some(1_000_000_000));
        assert_eq!(parse_time_ns(b"-0.5"), Some(-500_000_000));
        assert_eq!(parse_time_ns(b"0.0000000015"), Some(2));
        assert_eq!(parse_time_ns(b"1e-3"), Some(1_000_000));
        assert_eq!(parse_time_ns(b"abc"), None);
        assert_eq!(parse_time_ns(b""), None);
        assert_eq!(parse_time_ns(b"."), None);
        assert_eq!(parse_time_ns(b"nan"), None);
        assert_eq!(parse_time_ns(b"inf"), None);
        // One range with the writer: ±9e9 s, whatever the notation.
        assert_eq!(
            parse_time_ns(b"9000000000.0"),
            Some(9_000_000_000_000_000_000)
        );
        assert_eq!(parse_time_ns(b"-9e9"), Some(-9_000_000_000_000_000_000));
        assert_eq!(parse_time_ns(b"9000000000.00001"), None);
        assert_eq!(parse_time_ns(b"9223372035.9"), None);
        assert_eq!(parse_time_ns(b"-9000000000.1"), None);
        assert_eq!(parse_time_ns(b"1e300"), None);
    }

    #[test]
    fn plain_time_path_matches_the_general_parser() {
        // (text, whether it takes the plain path)
        let cases: &[(&str, bool)] = &[
            ("0.00000", true),
            ("0.01000", true),
            ("12.5", true),
            ("007.250", true),
            ("1.000000001", true),
            ("123456789.123456789", true),
            ("5.", false),
            (".5", false),
            ("1234567890.5", false),
            ("1.0000000015", false),
            ("0.1e3", false),
            ("-0.5", false),
            ("+1.5", false),
            ("1.2.3", false),
            ("1.2x", false),
            ("0x1.0", false),
            ("abc", false),
            ("", false),
        ];
        for &(text, plain) in cases {
            for sep in ["", " ", "\t", "    ''  80"] {
                let line = format!("{text}{sep}");
                let end = line
                    .find(|c: char| c.is_ascii_whitespace())
                    .unwrap_or(line.len());
                let general = parse_time_ns(&line.as_bytes()[..end]);
                match parse_plain_time(line.as_bytes()) {
                    Some((ns, used)) => {
                        assert!(plain, "{line:?} is not plain");
                        assert_eq!(Some(ns), general, "{line:?}");
                        assert_eq!(used, end, "{line:?}");
                    }
                    None => assert!(!plain, "{line:?} should take the plain path"),
                }
            }
        }
    }

    #[test]
    fn the_time_column_of_a_line_parses_either_way() {
        for line in [
            "0.01000    ''  80",
            "1e-3 '' 80",
            "-0.5\t'' 80",
            "7",
            "+1.5 x",
        ] {
            let end = line.find([' ', '\t']).unwrap_or(line.len());
            let want = parse_time_ns(&line.as_bytes()[..end]).map(|t| (t, end));
            assert!(want.is_some(), "{line:?}");
            assert_eq!(parse_line_time(line.as_bytes()), want, "{line:?}");
        }
        assert_eq!(parse_line_time(b"0.0x000 '' 80"), None);
        assert_eq!(parse_line_time(b""), None);
    }

    #[test]
    fn topics_follow_python_repr() {
        assert_eq!(parse_topic(b"'' 83").unwrap(), (String::new(), 2));
        assert_eq!(parse_topic(b"'abc'").unwrap(), ("abc".into(), 5));
        assert_eq!(parse_topic(br#""it's""#).unwrap(), ("it's".into(), 6));
        assert_eq!(parse_topic(br"'a\'b\\c'").unwrap().0, r"a'b\c");
        assert_eq!(parse_topic(br"'\xe9'").unwrap().0, "é");
        assert_eq!(parse_topic(b"u'x'").unwrap(), ("x".into(), 4));
        assert!(parse_topic(b"'open").is_err());
        assert!(parse_topic(b"bare").is_err());
    }

    fn line(elapsed_ns: i64, topic: &str, payload: &[u8]) -> String {
        let mut out = Vec::new();
        format_line(&mut out, elapsed_ns, topic, payload);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_follow_mcl_columns() {
        assert_eq!(
            line(10_000_000, "", &[0x90]),
            "     0.01000    ''          90\n"
        );
        assert_eq!(
            line(10_000_000_000, "", &[0x91, 0x00]),
            "    10.00000    ''          9100\n"
        );
        assert_eq!(
            line(1_500_000, "gnss", &[0xab]),
            "     0.00150    'gnss'      ab\n"
        );
        assert_eq!(
            line(0, "a_long_topic", &[0x01]),
            "     0.00000    'a_long_topic'    01\n"
        );
        assert_eq!(
            line(1_234_567_890_123, "", &[0x01]),
            "  1234.56789    ''          01\n"
        );
        assert_eq!(
            line(-5_000_000, "", &[0x01]),
            "    -0.00500    ''          01\n"
        );
    }

    #[test]
    fn time_rounds_like_python() {
        let t = |ns: i64| {
            let mut out = Vec::new();
            format_elapsed(&mut out, ns);
            String::from_utf8(out).unwrap().trim().to_string()
        };
        // '%1.5f' % 0.015625 == '0.01562' (an exact tie, to even).
        assert_eq!(t(15_625_000), "0.01562");
        assert_eq!(t(46_875_000), "0.04688");
        // Microsecond resolution, as timedelta.total_seconds().
        assert_eq!(t(5_499), "0.00001");
        assert_eq!(t(123_456_789), "0.12346");
    }

    #[test]
    fn odd_topics_become_python_literals() {
        assert_eq!(line(0, "it's", &[1]), "     0.00000    \"it's\"      01\n");
        assert_eq!(
            line(0, "a\\b\n", &[1]),
            "     0.00000    'a\\\\b\\n'    01\n"
        );
        for topic in ["it's", "a\\b\n", "both'\"", "tab\there", "\u{7f}x", "é ü"] {
            let mut out = Vec::new();
            format_topic(&mut out, topic);
            let text = String::from_utf8(out).unwrap();
            let (parsed, _) = parse_topic(text.trim_end().as_bytes()).unwrap();
            assert_eq!(parsed, topic, "{text}");
        }
    }

    #[test]
    fn formatted_lines_parse_back() {
        // Times MCL can write (microseconds, five decimals shown), topics
        // plain and literal, payloads of several lengths (never empty: a
        // record always has a payload column).
        let times = [
            0,
            10_000,
            1_230_000,
            999_990_000,
            86_400_000_000_000,
            -5_000_000,
        ];
        let topics = ["", "gnss", "a_long_topic", "it's", "a\\b\n", "é ü"];
        for (i, &t) in times.iter().enumerate() {
            for (j, topic) in topics.iter().enumerate() {
                let payload: Vec<u8> = (0..=(i * 7 + j) as u8).collect();
                let mut out = Vec::new();
                format_line(&mut out, t, topic, &payload);
                let text = out.strip_suffix(b"\n").expect("ends the line");
                let text = &text[text.iter().position(|b| *b != b' ').unwrap()..];
                let time_end = text.iter().position(|b| *b == b' ').unwrap();
                // Multiples of ten microseconds: `%1.5f` shows them exactly.
                assert_eq!(parse_time_ns(&text[..time_end]), Some(t));
                if t >= 0 {
                    assert_eq!(parse_plain_time(text), Some((t, time_end)));
                }
                let rest = &text[time_end..];
                let rest = &rest[rest.iter().position(|b| *b != b' ').unwrap()..];
                let (parsed, used) = parse_topic(rest).unwrap();
                assert_eq!(parsed, *topic);
                let hex = &rest[used..];
                let hex = &hex[hex.iter().position(|b| *b != b' ').unwrap()..];
                let mut back = Vec::new();
                crate::format::mcl::hex::decode_hex(hex, &mut back).unwrap();
                assert_eq!(back, payload);
            }
        }
    }
}
