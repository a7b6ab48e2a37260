//! Which log format a file is, from its first bytes (magic numbers); the
//! one place that knows them. A file whose bytes match no magic is taken
//! for an MCL text log, which has none.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The log formats netreplay knows by their content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MCL text log (no magic: anything that is not one of the others).
    Mcl,
    /// MCAP: `\x89MCAP0\r\n`.
    Mcap,
    /// Classic libpcap capture, either byte order, µs or ns timestamps.
    Pcap,
    /// pcapng: a Section Header Block first.
    Pcapng,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Mcl => "MCL",
            Format::Mcap => "MCAP",
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// The MCAP magic, at the start and at the end of a file.
pub const MCAP_MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
/// pcap magics as the file's first four bytes: µs and ns resolution, each
/// in both byte orders.
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
/// The block type of a pcapng Section Header Block (a palindrome: same in
/// both byte orders).
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// The most bytes a magic needs.
pub const DETECT_BYTES: usize = 8;

/// The format of a file starting with `head` (at least [`DETECT_BYTES`]
/// bytes unless the file is shorter).
pub fn detect_bytes(head: &[u8]) -> Format {
    if head.starts_with(MCAP_MAGIC) {
        Format::Mcap
    } else if head.len() >= 4 && PCAP_MAGICS.iter().any(|m| head[..4] == *m) {
        Format::Pcap
    } else if head.starts_with(&PCAPNG_MAGIC) {
        Format::Pcapng
    } else {
        Format::Mcl
    }
}

/// The format of the file at `path`, from its first bytes.
pub fn detect_file(path: &Path) -> Result<Format> {
    let mut file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let mut head = [0u8; DETECT_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A directory reads as EISDIR: the caller's open says what it is.
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Ok(Format::Mcl),
            Err(e) => return Err(Error::io(path, &e)),
        }
    }
    Ok(detect_bytes(&head[..filled]))
}

/// The error for a file of a format this build reads no records from.
pub fn unsupported(path: &Path, format: Format) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        message: format!(
            "unsupported format: this is a {} file (detected by its magic bytes), which \
             netreplay cannot read yet",
            format.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_name_their_formats() {
        assert_eq!(detect_bytes(b"\x89MCAP0\r\n\x01"), Format::Mcap);
        assert_eq!(detect_bytes(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), Format::Pcap);
        assert_eq!(detect_bytes(&[0xa1, 0xb2, 0xc3, 0xd4]), Format::Pcap);
        assert_eq!(detect_bytes(&[0x4d, 0x3c, 0xb2, 0xa1]), Format::Pcap);
        assert_eq!(detect_bytes(&[0xa1, 0xb2, 0x3c, 0x4d]), Format::Pcap);
        assert_eq!(
            detect_bytes(&[0x0a, 0x0d, 0x0d, 0x0a, 0x1c]),
            Format::Pcapng
        );
        assert_eq!(detect_bytes(b"#-----\n# MCL_LOG"), Format::Mcl);
        assert_eq!(detect_bytes(b"     0.01000    ''  80"), Format::Mcl);
        assert_eq!(detect_bytes(b""), Format::Mcl);
        // A cut magic is not the format.
        assert_eq!(detect_bytes(b"\x89MCAP0"), Format::Mcl);
    }
}
