//! The frames of a pcap or pcapng file, over its bytes, with `pcap-parser`
//! (zero-copy): each frame's link type, absolute time in ns and bytes.
//!
//! pcap: one link type and resolution (µs, or ns for the 0xa1b23c4d magic)
//! for the file, either byte order. pcapng: any number of sections (each
//! with its own byte order) and interfaces, each with its own link type,
//! `if_tsresol` and `if_tsoffset`.

use pcap_parser::nom;
use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified};
use pcap_parser::pcapng::{parse_block_be, parse_block_le, parse_sectionheaderblock, Block};
use pcap_parser::{parse_pcap_header, PcapError};

/// Which of the two formats a file is, by its first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap,
    Pcapng,
}

/// The magic numbers of pcap (µs, ns, the "modified" format of old Red Hat
/// tcpdump; either byte order) and of pcapng's section header block.
pub fn sniff(bytes: &[u8]) -> Option<CaptureFormat> {
    let magic: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0xa1b2_cd34 | 0x34cd_b2a1 => {
            Some(CaptureFormat::Pcap)
        }
        0x0a0d_0d0a => Some(CaptureFormat::Pcapng),
        _ => None,
    }
}

/// How an interface's timestamps are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Interface {
    pub(super) linktype: i32,
    /// Timestamp units per second.
    pub(super) units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    pub(super) offset_s: i64,
}

/// One captured frame.
#[derive(Debug)]
pub(super) struct Frame<'a> {
    pub(super) linktype: i32,
    /// Capture time, ns since the epoch.
    pub(super) time_ns: i64,
    pub(super) data: &'a [u8],
}

/// A frame that cannot be read: where and why. Reading stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bad {
    pub(super) offset: usize,
    pub(super) reason: String,
}

/// What a block that is not a frame was (counted by the reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotFrame {
    /// A simple packet block: no timestamp, nothing to time it by.
    Untimed,
    /// Any other block (statistics, name resolution...), or an interface
    /// or section header (state, kept by the cursor).
    Other,
}

pub(super) enum Item<'a> {
    Frame(Frame<'a>),
    NotFrame(NotFrame),
}

/// Where reading is: the next byte, and the state of the section there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cursor {
    pub(super) pos: usize,
    /// pcapng: the section's byte order and its interfaces so far; pcap: the
    /// file's one interface.
    pub(super) big_endian: bool,
    pub(super) interfaces: Vec<Interface>,
    /// pcapng: sections begun so far (the first is 1).
    pub(super) section: usize,
}

/// A capture file's layout: what its header said.
#[derive(Debug, Clone)]
pub(super) enum Layout {
    Pcap {
        big_endian: bool,
        modified: bool,
        /// ns (1) or µs (1000) per fractional unit.
        frac_ns: i64,
        interface: Interface,
    },
    Pcapng,
}

fn nom_reason(e: &nom::Err<PcapError<&[u8]>>) -> String {
    match e {
        nom::Err::Incomplete(_) => "the file ends inside this record (cut short)".into(),
        nom::Err::Error(e) | nom::Err::Failure(e) => match e {
            PcapError::NomError(_, kind) => format!("malformed block ({kind:?})"),
            PcapError::HeaderNotRecognized => "not a pcap or pcapng header".into(),
            other => format!("{other:?}"),
        },
    }
}

impl Layout {
    /// Read the file header; the cursor at the first frame.
    pub(super) fn open(bytes: &[u8]) -> Result<(Layout, Cursor), Bad> {
        let bad = |reason: String| Bad { offset: 0, reason };
        match sniff(bytes) {
            None if bytes.len() < 4 => Err(bad(format!(
                "not a pcap or pcapng file: {} bytes, shorter than any header",
                bytes.len()
            ))),
            None => Err(bad(format!(
                "not a pcap or pcapng file: magic {:02x?} is neither pcap's (a1b2c3d4, a1b23c4d) nor pcapng's (0a0d0d0a)",
                &bytes[..4]
            ))),
            Some(CaptureFormat::Pcap) => {
                let (rest, header) = parse_pcap_header(bytes)
                    .map_err(|e| bad(format!("pcap header: {}", nom_reason(&e))))?;
                let interface = Interface {
                    linktype: header.network.0,
                    units: if header.is_nanosecond_precision() { 1_000_000_000 } else { 1_000_000 },
                    offset_s: 0,
                };
                let layout = Layout::Pcap {
                    big_endian: header.is_bigendian(),
                    modified: header.is_modified_format(),
                    frac_ns: if header.is_nanosecond_precision() { 1 } else { 1000 },
                    interface,
                };
                let cursor = Cursor {
                    pos: bytes.len() - rest.len(),
                    big_endian: header.is_bigendian(),
                    interfaces: vec![interface],
                    section: 1,
                };
                Ok((layout, cursor))
            }
            Some(CaptureFormat::Pcapng) => Ok((
                Layout::Pcapng,
                Cursor {
                    pos: 0,
                    big_endian: false,
                    interfaces: Vec::new(),
                    section: 0,
                },
            )),
        }
    }

    /// The next item at the cursor, `Ok(None)` at the end of the file.
    pub(super) fn next<'a>(
        &self,
        bytes: &'a [u8],
        cursor: &mut Cursor,
    ) -> Result<Option<Item<'a>>, Bad> {
        let offset = cursor.pos;
        let Some(input) = bytes.get(offset..).filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        let bad = |reason: String| Bad { offset, reason };
        match self {
            Layout::Pcap {
                big_endian,
                modified,
                frac_ns,
                interface,
            } => {
                let parsed = if *modified {
                    parse_pcap_frame_modified(input)
                } else if *big_endian {
                    parse_pcap_frame_be(input)
                } else {
                    parse_pcap_frame(input)
                };
                let (rest, frame) = parsed.map_err(|e| bad(nom_reason(&e)))?;
                cursor.pos = bytes.len() - rest.len();
                let time_ns =
                    i64::from(frame.ts_sec) * 1_000_000_000 + i64::from(frame.ts_usec) * frac_ns;
                Ok(Some(Item::Frame(Frame {
                    linktype: interface.linktype,
                    time_ns,
                    data: frame.data,
                })))
            }
            Layout::Pcapng => {
                // A section header says its own byte order.
                let parsed = if cursor.section == 0 || input.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a])
                {
                    parse_sectionheaderblock(input).map(|(r, b)| (r, Block::SectionHeader(b)))
                } else if cursor.big_endian {
                    parse_block_be(input)
                } else {
                    parse_block_le(input)
                };
                let (rest, block) = parsed.map_err(|e| bad(nom_reason(&e)))?;
                cursor.pos = bytes.len() - rest.len();
                match block {
                    Block::SectionHeader(shb) => {
                        cursor.big_endian = shb.big_endian();
                        cursor.interfaces.clear();
                        cursor.section += 1;
                        Ok(Some(Item::NotFrame(NotFrame::Other)))
                    }
                    Block::InterfaceDescription(idb) => {
                        let units = idb.ts_resolution().ok_or_else(|| {
                            bad(format!(
                                "interface {}: if_tsresol {:#04x} is out of range",
                                cursor.interfaces.len(),
                                idb.if_tsresol
                            ))
                        })?;
                        cursor.interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            units,
                            offset_s: idb.if_tsoffset,
                        });
                        Ok(Some(Item::NotFrame(NotFrame::Other)))
                    }
                    Block::EnhancedPacket(epb) => {
                        let interface =
                            *cursor.interfaces.get(epb.if_id as usize).ok_or_else(|| {
                                bad(format!(
                                "packet of interface {}, but the section describes {} interface(s)",
                                epb.if_id,
                                cursor.interfaces.len()
                            ))
                            })?;
                        let caplen = epb.caplen as usize;
                        let data = epb.data.get(..caplen).ok_or_else(|| {
                            bad(format!(
                                "captured length {caplen} exceeds the block's data ({} bytes)",
                                epb.data.len()
                            ))
                        })?;
                        let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let ns = u128::from(ts) * 1_000_000_000 / u128::from(interface.units);
                        let time_ns = i64::try_from(ns)
                            .ok()
                            .and_then(|ns| {
                                ns.checked_add(interface.offset_s.checked_mul(1_000_000_000)?)
                            })
                            .ok_or_else(|| {
                                bad(format!("timestamp {ts} is beyond the year 2262"))
                            })?;
                        Ok(Some(Item::Frame(Frame {
                            linktype: interface.linktype,
                            time_ns,
                            data,
                        })))
                    }
                    Block::SimplePacket(_) => Ok(Some(Item::NotFrame(NotFrame::Untimed))),
                    _ => Ok(Some(Item::NotFrame(NotFrame::Other))),
                }
            }
        }
    }
}
