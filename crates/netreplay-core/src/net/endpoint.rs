//! `udp://host:port` addresses and network interface selection, shared by
//! [`crate::net::UdpSink`] and [`crate::net::Listener`].
//!
//! Accepted forms: `udp://127.0.0.1:26000`, `udp://[::1]:26000`,
//! `udp://[ff15::c75e:ce42:ec8e:000d]:26000`, `udp://[fe80::1%eth0]:26000`,
//! `udp://host:26000` (resolved once, at construction). The port defaults to
//! MCL's 26000 when omitted. Hosts are resolved when the endpoint is parsed,
//! so an unresolvable name fails construction, not the first send.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};

use crate::format::wire::DEFAULT_PORT;
use crate::{Error, Result};

/// A parsed and resolved `udp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given (for messages and statistics).
    pub url: String,
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parse and resolve `url`. `name` is the option it came from (for the
    /// error). Port 0 is accepted only with `allow_port_zero` (listeners:
    /// "any free port").
    pub fn parse(url: &str, name: &'static str, allow_port_zero: bool) -> Result<Endpoint> {
        let fail = |why: String| Error::invalid(name, format!("'{url}': {why}"));
        let rest = url
            .get(..6)
            .filter(|s| s.eq_ignore_ascii_case("udp://"))
            .map(|_| &url[6..])
            .ok_or_else(|| fail("expected a URL of the form udp://host:port".into()))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(c) = rest
            .chars()
            .find(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace())
        {
            return Err(fail(format!(
                "unexpected {c:?}: a UDP URL has only a host and a port"
            )));
        }
        let (host, port_text) = if let Some(inner) = rest.strip_prefix('[') {
            let close = inner
                .find(']')
                .ok_or_else(|| fail("missing ']' after the IPv6 address".into()))?;
            let after = &inner[close + 1..];
            let port =
                match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or_else(|| {
                        fail(format!("unexpected {after:?} after the IPv6 address"))
                    })?),
                };
            (HostPart::V6(&inner[..close]), port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            if host.contains(':') {
                return Err(fail(
                    "an IPv6 address must be in brackets, as in udp://[::1]:26000".into(),
                ));
            }
            (HostPart::Name(host), port)
        };
        let port = match port_text {
            None => DEFAULT_PORT,
            Some("") => return Err(fail("the port is empty".into())),
            Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(fail(format!("the port {p:?} is not a number")))
            }
            Some(p) => match p.parse::<u32>() {
                Ok(n) if n <= 65_535 && (n > 0 || allow_port_zero) => n as u16,
                _ => {
                    let low = if allow_port_zero { 0 } else { 1 };
                    return Err(fail(format!("the port {p} is outside {low}..=65535")));
                }
            },
        };
        let addr = match host {
            HostPart::V6(text) => {
                let (ip_text, zone) = match text.split_once('%') {
                    Some((ip, zone)) => (ip, Some(zone)),
                    None => (text, None),
                };
                let ip: Ipv6Addr = ip_text
                    .parse()
                    .map_err(|_| fail(format!("{ip_text:?} is not an IPv6 address")))?;
                let scope = match zone {
                    None => 0,
                    Some(zone) => Interface::parse(zone)
                        .ok()
                        .and_then(|i| i.index())
                        .ok_or_else(|| fail(format!("unknown interface {zone:?} after '%'")))?,
                };
                SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
            }
            HostPart::Name("") => return Err(fail("the host is missing".into())),
            HostPart::Name(host) => match host.parse::<Ipv4Addr>() {
                Ok(ip) => SocketAddr::new(IpAddr::V4(ip), port),
                Err(_) => {
                    if !host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                    {
                        return Err(fail(format!("{host:?} is not a host name or address")));
                    }
                    let mut found = (host, port)
                        .to_socket_addrs()
                        .map_err(|e| fail(format!("cannot resolve host {host:?}: {e}")))?;
                    found
                        .next()
                        .ok_or_else(|| fail(format!("host {host:?} has no address")))?
                }
            },
        };
        Ok(Endpoint {
            url: url.to_string(),
            addr,
        })
    }

    pub fn is_multicast(&self) -> bool {
        self.addr.ip().is_multicast()
    }
}

enum HostPart<'a> {
    V6(&'a str),
    Name(&'a str),
}

/// The network interface for multicast: a name (`eth0`, resolved to its
/// index), an index (`2`) or, for IPv4 only, one of its IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Index(u32),
    Ipv4(Ipv4Addr),
}

impl Interface {
    pub fn parse(text: &str) -> Result<Interface> {
        let fail = |why: String| Error::invalid("interface", format!("'{text}': {why}"));
        if text.is_empty() {
            return Err(fail("empty interface name".into()));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Interface::Index(n)),
                _ => Err(fail("not a valid interface index".into())),
            };
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(Interface::Ipv4(ip));
        }
        let name = CString::new(text).map_err(|_| fail("contains a NUL byte".into()))?;
        // SAFETY: `name` is a valid NUL-terminated C string that outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(fail("no network interface of this name".into()));
        }
        Ok(Interface::Index(index))
    }

    pub fn index(&self) -> Option<u32> {
        match self {
            Interface::Index(i) => Some(*i),
            Interface::Ipv4(_) => None,
        }
    }
}

/// An error of a socket operation on `url` ([`Error::Network`]).
pub(crate) fn socket_error(url: &str, action: &str, err: &std::io::Error) -> Error {
    let hint = match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another socket already uses this address and port)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            " (this host has no interface with that address)".to_string()
        }
        _ => String::new(),
    };
    Error::Network {
        url: url.into(),
        message: format!("cannot {action}: {err}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> SocketAddr {
        Endpoint::parse(url, "destination", false).unwrap().addr
    }

    fn reason(url: &str) -> String {
        match Endpoint::parse(url, "destination", false) {
            Err(Error::InvalidArgument { name, reason }) => {
                assert_eq!(name, "destination");
                assert!(reason.contains(url), "{reason}");
                reason
            }
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn urls_parse() {
        assert_eq!(
            ok("udp://127.0.0.1:26000"),
            "127.0.0.1:26000".parse().unwrap()
        );
        assert_eq!(ok("UDP://127.0.0.1:5/"), "127.0.0.1:5".parse().unwrap());
        assert_eq!(ok("udp://[::1]:26000"), "[::1]:26000".parse().unwrap());
        let mc = Endpoint::parse("udp://[ff15::c75e:ce42:ec8e:000d]:26000", "d", false).unwrap();
        assert!(mc.is_multicast());
        assert_eq!(ok("udp://127.0.0.1"), "127.0.0.1:26000".parse().unwrap());
        assert_eq!(ok("udp://[::1]"), "[::1]:26000".parse().unwrap());
        assert_eq!(ok("udp://localhost:9").port(), 9);
        assert!(ok("udp://localhost:9").ip().is_loopback());
        let lo = Interface::parse("lo").unwrap().index().unwrap();
        let scoped = ok("udp://[fe80::1%lo]:7");
        assert!(matches!(scoped, SocketAddr::V6(a) if a.scope_id() == lo));
        assert_eq!(
            Endpoint::parse("udp://0.0.0.0:0", "address", true)
                .unwrap()
                .addr
                .port(),
            0
        );
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(reason("127.0.0.1:26000").contains("udp://host:port"));
        assert!(reason("tcp://127.0.0.1:1").contains("udp://host:port"));
        assert!(reason("udp://127.0.0.1:").contains("port is empty"));
        assert!(reason("udp://127.0.0.1:abc").contains("not a number"));
        assert!(reason("udp://127.0.0.1:70000").contains("outside 1..=65535"));
        assert!(reason("udp://127.0.0.1:0").contains("outside 1..=65535"));
        assert!(reason("udp://::1:5").contains("brackets"));
        assert!(reason("udp://[::1:5").contains("']'"));
        assert!(reason("udp://[::g]:5").contains("not an IPv6 address"));
        assert!(reason("udp://[::1]x").contains("after the IPv6 address"));
        assert!(reason("udp://:5").contains("host is missing"));
        assert!(reason("udp://h/path").contains("'/'"));
        assert!(reason("udp://a b:1").contains("' '"));
        assert!(reason("udp://no-such-host.invalid:1").contains("cannot resolve host"));
        assert!(reason("udp://[fe80::1%nosuchif0]:1").contains("unknown interface"));
    }

    #[test]
    fn interfaces_parse() {
        assert!(matches!(Interface::parse("lo").unwrap(), Interface::Index(i) if i > 0));
        assert_eq!(Interface::parse("3").unwrap(), Interface::Index(3));
        assert_eq!(
            Interface::parse("127.0.0.1").unwrap(),
            Interface::Ipv4(Ipv4Addr::LOCALHOST)
        );
        assert!(Interface::parse("").is_err());
        assert!(Interface::parse("0").is_err());
        let err = Interface::parse("nosuchif0").unwrap_err().to_string();
        assert!(err.contains("no network interface"), "{err}");
    }
}
