//! The `#` header block of an MCL log, read and written.
//!
//! MCL writes `#` + 65 `-`, then each text line as `# <line>`, a blank line
//! as `#`, then the `#---` line again. Version `%1.1f` (`1.0`), `created` is
//! Python's `str(datetime)` of the (UTC) time origin.
//!
//! Header variants found in MCL's own files: the current `WriteFile` writes
//! blank header lines as `#`, while the writer that produced the typed
//! fixture logs (`UnitTestMessageA.log`, `…B.log`) prefixed every line with
//! `# `, blank ones included (`hdr = [COMMENT_CHARACTER + ' ' + line for
//! line in lines]`); [`HeaderStyle::Legacy`] reproduces that. An empty
//! revision is written as `#     -- revision` with no trailing spaces, as
//! in MCL's `RawUnitTestData.log` (MCL's code would leave four spaces
//! there; its readers do not care).

use crate::format::mcl::line::TIME_PADDING;

/// Fields of an MCL log header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub version: Option<String>,
    pub revision: Option<String>,
    pub created: Option<String>,
    /// `>>> Type`; `None` for raw data (`>>> None`) or when the line is missing.
    pub message_type: Option<String>,
    /// `>>> None`: the stream holds raw data, not typed messages.
    pub raw: bool,
}

/// Parse the `#` block at the top of a file. Returns the header (if the file
/// starts with one), the byte offset of the first line after it and the
/// number of lines it spans.
pub fn parse_header(bytes: &[u8]) -> (Option<Header>, usize, u64) {
    let mut pos = 0;
    let mut lines = 0;
    let mut header = Header::default();
    while pos < bytes.len() && bytes[pos] == b'#' {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        let text = String::from_utf8_lossy(&bytes[pos + 1..end]);
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("--") {
            let rest = rest.trim_start();
            let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let value = Some(value.trim().to_string());
            match key {
                "version" => header.version = value,
                "revision" => header.revision = value,
                "created" => header.created = value,
                _ => {}
            }
        } else if let Some(rest) = text.strip_prefix(">>>") {
            let name = rest.trim();
            if name == "None" {
                header.raw = true;
            } else if !name.is_empty() {
                header.message_type = Some(name.to_string());
            }
        }
        pos = (end + 1).min(bytes.len());
        lines += 1;
    }
    if lines == 0 {
        (None, 0, 0)
    } else {
        (Some(header), pos, lines)
    }
}

/// `#` followed by 65 dashes.
pub const COMMENT_BLOCK: &str =
    "#-----------------------------------------------------------------";

/// How blank header lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderStyle {
    /// MCL's current `WriteFile`: `#`.
    #[default]
    Mcl,
    /// The earlier writer (MCL's typed fixture logs): `# `.
    Legacy,
}

/// The header block, every line ending in `\n`.
pub fn header_text(
    message_type: Option<&str>,
    revision: &str,
    created: &str,
    style: HeaderStyle,
) -> String {
    let field = |name: &str, value: &str| {
        let line = format!("    -- {name:<11} {value}");
        line.trim_end().to_string()
    };
    let lines = [
        "MCL_LOG".to_string(),
        field("version", "1.0"),
        field("revision", revision),
        field("created", created),
        String::new(),
        "Each line of this file records a packet of data transmitted over the".into(),
        "network. The columns in this file are:".into(),
        String::new(),
        "    1) The time when the data frame was received relative".into(),
        "       to when this file was created.".into(),
        "    2) The topic associated with the data frame.".into(),
        "    3) The binary data stored as a hex string.".into(),
        String::new(),
        "The following data type was recorded in this file:".into(),
        String::new(),
        format!("     >>> {}", message_type.unwrap_or("None")),
        String::new(),
        format!(
            "{:>width$}    {:<8}    <Payload>",
            "<Time>",
            "<Topic>",
            width = TIME_PADDING - 2
        ),
    ];
    let mut out = String::with_capacity(1024);
    out.push_str(COMMENT_BLOCK);
    out.push('\n');
    for line in &lines {
        if line.is_empty() {
            out.push_str(match style {
                HeaderStyle::Mcl => "#",
                HeaderStyle::Legacy => "# ",
            });
        } else {
            out.push_str("# ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(COMMENT_BLOCK);
    out.push('\n');
    out
}

/// Python's `str(datetime)` of a UTC time given in microseconds since the
/// Unix epoch: `YYYY-MM-DD HH:MM:SS`, then `.ffffff` if not a whole second.
pub fn format_created(unix_us: i64) -> String {
    let secs = unix_us.div_euclid(1_000_000);
    let micros = unix_us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's algorithm).
pub(super) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_parsed() {
        let text = b"#---\n# MCL_LOG\n#     -- version     1.0\n#     -- revision\n#     -- created     1970-01-01 00:00:00\n#\n#      >>> UnitTestMessageA\n#---\n     0.00000    ''          80\n";
        let (header, start, lines) = parse_header(text);
        let header = header.unwrap();
        assert_eq!(header.version.as_deref(), Some("1.0"));
        assert_eq!(header.revision.as_deref(), Some(""));
        assert_eq!(header.created.as_deref(), Some("1970-01-01 00:00:00"));
        assert_eq!(header.message_type.as_deref(), Some("UnitTestMessageA"));
        assert!(!header.raw);
        assert_eq!(lines, 8);
        assert!(text[start..].starts_with(b"     0.00000"));
        assert_eq!(parse_header(b"0.1 '' 80\n"), (None, 0, 0));
        let (raw, _, _) = parse_header(b"#  >>> None\n");
        assert!(raw.unwrap().raw);
    }

    #[test]
    fn created_is_python_str_of_datetime() {
        assert_eq!(format_created(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_created(1_433_160_896_123_456),
            "2015-06-01 12:14:56.123456"
        );
        assert_eq!(format_created(951_782_400_000_000), "2000-02-29 00:00:00");
        assert_eq!(format_created(-1), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn headers_in_both_styles() {
        let h = header_text(Some("A"), "", "1970-01-01 00:00:00", HeaderStyle::Mcl);
        assert!(h.starts_with(&format!("{COMMENT_BLOCK}\n# MCL_LOG\n#     -- version     1.0\n#     -- revision\n#     -- created     1970-01-01 00:00:00\n#\n")));
        assert!(h.contains("\n#      >>> A\n#\n#     <Time>    <Topic>     <Payload>\n"));
        assert!(h.ends_with(&format!("{COMMENT_BLOCK}\n")));
        assert_eq!(h.lines().count(), 20);
        let legacy = header_text(None, "abc", "x", HeaderStyle::Legacy);
        assert!(legacy.contains("\n#     -- revision    abc\n"));
        assert!(legacy.contains("\n#      >>> None\n# \n"));
        assert!(!legacy.contains("\n#\n"));
        let (parsed, _, lines) = parse_header(h.as_bytes());
        let parsed = parsed.unwrap();
        assert_eq!(parsed.message_type.as_deref(), Some("A"));
        assert_eq!(parsed.created.as_deref(), Some("1970-01-01 00:00:00"));
        assert_eq!(lines, 20);
    }

    #[test]
    fn written_headers_parse_back() {
        for style in [HeaderStyle::Mcl, HeaderStyle::Legacy] {
            for (message_type, revision, created) in [
                (Some("UnitTestMessageA"), "", "1970-01-01 00:00:00"),
                (None, "0123456789abcdef", "2015-06-01 12:14:56.123456"),
            ] {
                let text = header_text(message_type, revision, created, style);
                let body = format!("{text}     0.00000    ''          80\n");
                let (header, start, lines) = parse_header(body.as_bytes());
                assert_eq!(
                    header,
                    Some(Header {
                        version: Some("1.0".into()),
                        revision: Some(revision.into()),
                        created: Some(created.into()),
                        message_type: message_type.map(String::from),
                        raw: message_type.is_none(),
                    }),
                    "{style:?} {message_type:?}"
                );
                assert_eq!(start, text.len());
                assert_eq!(lines, text.lines().count() as u64);
            }
        }
    }
}
