//! One captured frame down to its UDP datagram: link layer (Ethernet with
//! 802.1Q/QinQ tags, Linux cooked SLL and SLL2, raw IP, BSD loopback), IPv4
//! or IPv6, UDP. Checksums are not verified: captures of loopback traffic
//! and of NICs with checksum offload carry partial ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Link types (tcpdump.org/linktypes.html).
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    /// DLT_RAW on most systems; OpenBSD's value 14 too.
    pub const RAW_12: i32 = 12;
    pub const RAW_14: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const PROTO_UDP: u8 = 17;
/// IPv6 extension headers that may stand before UDP (hop-by-hop,
/// routing, destination options); a fragment header (44) means a fragment.
const IPV6_EXTENSIONS: [u8; 3] = [0, 43, 60];
const IPV6_FRAGMENT: u8 = 44;

/// Why a frame gives no UDP datagram; counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not IPv4/IPv6, or not UDP (TCP, ICMP, ARP...).
    NotUdp,
    /// An IPv4 or IPv6 fragment: not reassembled.
    Fragment,
    /// The capture holds less of the datagram than its UDP length (snaplen).
    Truncated,
    /// Headers that do not parse (lengths out of range).
    Malformed,
    /// A link type this reader does not decode.
    LinkType,
}

/// The UDP datagram of a frame: addresses and where the payload lies in
/// the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: (usize, usize),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The UDP datagram in `frame`, a frame of `linktype`.
pub fn decode(linktype: i32, frame: &[u8]) -> Result<Udp, Skip> {
    let (ethertype, at) = match linktype {
        linktype::ETHERNET => ethernet(frame)?,
        linktype::LINUX_SLL => (be16(frame, 14).ok_or(Skip::Malformed)?, 16),
        linktype::LINUX_SLL2 => (be16(frame, 0).ok_or(Skip::Malformed)?, 20),
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 => (ip_version(frame)?, 0),
        linktype::IPV4 => (ETHERTYPE_IPV4, 0),
        linktype::IPV6 => (ETHERTYPE_IPV6, 0),
        // A 4-byte address family: host order (NULL) or network order
        // (LOOP); the IP version byte after it says the same, in any order.
        linktype::NULL | linktype::LOOP => (ip_version(frame.get(4..).ok_or(Skip::Malformed)?)?, 4),
        _ => return Err(Skip::LinkType),
    };
    let ip = frame.get(at..).ok_or(Skip::Malformed)?;
    let udp = match ethertype {
        ETHERTYPE_IPV4 => ipv4(ip)?,
        ETHERTYPE_IPV6 => ipv6(ip)?,
        _ => return Err(Skip::NotUdp),
    };
    Ok(Udp {
        payload: (udp.payload.0 + at, udp.payload.1 + at),
        ..udp
    })
}

/// The ethertype after the MAC addresses and any VLAN tags, and where the
/// network header starts.
fn ethernet(frame: &[u8]) -> Result<(u16, usize), Skip> {
    let mut at = 12;
    loop {
        let ethertype = be16(frame, at).ok_or(Skip::Malformed)?;
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => at += 4,
            _ => return Ok((ethertype, at + 2)),
        }
    }
}

fn ip_version(ip: &[u8]) -> Result<u16, Skip> {
    match ip.first().ok_or(Skip::Malformed)? >> 4 {
        4 => Ok(ETHERTYPE_IPV4),
        6 => Ok(ETHERTYPE_IPV6),
        _ => Err(Skip::NotUdp),
    }
}

fn ipv4(ip: &[u8]) -> Result<Udp, Skip> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2).ok_or(Skip::Malformed)?);
    if header < 20 || total < header {
        return Err(Skip::Malformed);
    }
    if ip[9] != PROTO_UDP {
        return Err(Skip::NotUdp);
    }
    // More fragments, or a fragment offset: a piece of a datagram.
    let flags_offset = be16(ip, 6).ok_or(Skip::Malformed)?;
    if flags_offset & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    udp(ip, header, src, dst)
}

fn ipv6(ip: &[u8]) -> Result<Udp, Skip> {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&ip[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let (src, dst) = (addr(8), addr(24));
    let mut next = ip[6];
    let mut at = 40;
    while IPV6_EXTENSIONS.contains(&next) {
        let len = usize::from(*ip.get(at + 1).ok_or(Skip::Truncated)?) * 8 + 8;
        next = ip[at];
        at += len;
    }
    match next {
        PROTO_UDP => udp(ip, at, src, dst),
        IPV6_FRAGMENT => Err(Skip::Fragment),
        _ => Err(Skip::NotUdp),
    }
}

/// The UDP header at `at` of `ip`, with the payload range its length gives.
fn udp(ip: &[u8], at: usize, src: IpAddr, dst: IpAddr) -> Result<Udp, Skip> {
    let header = ip.get(at..at + 8).ok_or(Skip::Truncated)?;
    let src_port = be16(header, 0).ok_or(Skip::Malformed)?;
    let dst_port = be16(header, 2).ok_or(Skip::Malformed)?;
    let len = usize::from(be16(header, 4).ok_or(Skip::Malformed)?);
    if len < 8 {
        return Err(Skip::Malformed);
    }
    let end = at + len;
    if end > ip.len() {
        return Err(Skip::Truncated);
    }
    Ok(Udp {
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
        payload: (at + 8, end),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 UDP packet (no options) carrying `payload`.
    pub(crate) fn ipv4_udp(
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u16, u16),
        payload: &[u8],
    ) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let ulen = 8 + payload.len();
        p.extend_from_slice(&ports.0.to_be_bytes());
        p.extend_from_slice(&ports.1.to_be_bytes());
        p.extend_from_slice(&[(ulen >> 8) as u8, ulen as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    pub(crate) fn ethernet_of(ip: &[u8], tags: &[u16]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for &t in tags {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&[0, 5]);
        }
        let ethertype = if ip[0] >> 4 == 6 {
            ETHERTYPE_IPV6
        } else {
            ETHERTYPE_IPV4
        };
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    fn payload_of<'a>(frame: &'a [u8], udp: &Udp) -> &'a [u8] {
        &frame[udp.payload.0..udp.payload.1]
    }

    #[test]
    fn ethernet_vlan_and_qinq() {
        let ip = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], (5000, 26000), b"hi");
        for tags in [
            &[][..],
            &[ETHERTYPE_VLAN],
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
        ] {
            let f = ethernet_of(&ip, tags);
            let u = decode(linktype::ETHERNET, &f).unwrap();
            assert_eq!(u.dst.to_string(), "10.0.0.2:26000");
            assert_eq!(u.src.to_string(), "10.0.0.1:5000");
            assert_eq!(payload_of(&f, &u), b"hi");
        }
    }

    #[test]
    fn other_link_types() {
        let ip = ipv4_udp([127, 0, 0, 1], [127, 0, 0, 1], (1, 2), b"xyz");
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        sll.extend_from_slice(&ip);
        let mut sll2 = ETHERTYPE_IPV4.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        let mut null = 2u32.to_ne_bytes().to_vec();
        null.extend_from_slice(&ip);
        for (lt, f) in [
            (linktype::LINUX_SLL, &sll),
            (linktype::LINUX_SLL2, &sll2),
            (linktype::RAW, &ip),
            (linktype::RAW_12, &ip),
            (linktype::IPV4, &ip),
            (linktype::NULL, &null),
        ] {
            let u = decode(lt, f).unwrap_or_else(|e| panic!("{lt}: {e:?}"));
            assert_eq!(payload_of(f, &u), b"xyz", "{lt}");
        }
        assert_eq!(decode(147, &ip), Err(Skip::LinkType));
    }

    #[test]
    fn ipv6_with_an_extension_header() {
        let payload = b"six";
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        ip.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        ip.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        ip[6] = 0; // hop-by-hop options first
        ip.extend_from_slice(&[PROTO_UDP, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&7u16.to_be_bytes());
        ip.extend_from_slice(&26000u16.to_be_bytes());
        ip.extend_from_slice(&11u16.to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(payload);
        let u = decode(linktype::RAW, &ip).unwrap();
        assert_eq!(u.dst.to_string(), "[::1]:26000");
        assert_eq!(payload_of(&ip, &u), payload);
        ip[40] = IPV6_FRAGMENT;
        assert_eq!(decode(linktype::IPV6, &ip), Err(Skip::Fragment));
    }

    #[test]
    fn skips_say_why() {
        let mut ip = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], (1, 2), b"abcdef");
        assert_eq!(
            decode(linktype::RAW, &ip[..ip.len() - 1]),
            Err(Skip::Truncated)
        );
        assert_eq!(decode(linktype::RAW, &ip[..10]), Err(Skip::Malformed));
        ip[6] = 0x20; // more fragments
        assert_eq!(decode(linktype::RAW, &ip), Err(Skip::Fragment));
        ip[6] = 0x40;
        ip[9] = 6; // TCP
        assert_eq!(decode(linktype::RAW, &ip), Err(Skip::NotUdp));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&0x0806u16.to_be_bytes());
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(decode(linktype::ETHERNET, &arp), Err(Skip::NotUdp));
        assert_eq!(decode(linktype::ETHERNET, &[0; 5]), Err(Skip::Malformed));
        assert_eq!(decode(linktype::RAW, &[]), Err(Skip::Malformed));
    }
}
