//! Routing by the address a record's topic names: a capture's datagrams
//! (topic = original destination `ip:port`) sent where they were going, or
//! rewritten.
//!
//! Precedence: an exact `ip:port` of the map, then a `*:port` of the map,
//! then the sink's `destination` (everything to one place), then the
//! topic's own address. A topic that is no address goes nowhere (counted
//! `unrouted`). Sockets for the topics' own addresses are opened as they
//! first appear (one `socket` + `connect`, a few µs, once per address) and
//! kept; the answer per topic is cached, so a record costs one hash lookup.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::net::udp::routing::{open_among, Destination, SocketOptions};
use crate::{Error, Result};

/// The rewrites of [`AddressRouting`]: `ip:port` or `*:port` → `udp://host:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readdress {
    pub map: Vec<(String, String)>,
}

enum Key {
    Exact(SocketAddr),
    Port(u16),
}

fn parse_key(key: &str) -> Result<Key> {
    if let Some(port) = key.strip_prefix("*:") {
        return port.parse().map(Key::Port).map_err(|_| {
            Error::invalid(
                "map",
                format!("'{key}': the port after '*:' must be 0..=65535"),
            )
        });
    }
    key.parse().map(Key::Exact).map_err(|_| {
        Error::invalid(
            "map",
            format!("'{key}': expected an original destination ip:port, [v6]:port or *:port"),
        )
    })
}

pub(super) struct AddressRouting {
    exact: HashMap<SocketAddr, usize>,
    ports: HashMap<u16, usize>,
    default: Option<usize>,
    /// Topic → destination index (`None`: not an address, or its socket
    /// could not be opened).
    cache: HashMap<Box<str>, Option<usize>>,
    socket: SocketOptions,
}

impl AddressRouting {
    /// Open the map's destinations now; `default` is the sink's destination
    /// (already opened).
    pub(super) fn new(
        readdress: &Readdress,
        default: Option<usize>,
        destinations: &mut Vec<Destination>,
        socket: SocketOptions,
    ) -> Result<Self> {
        let mut exact = HashMap::new();
        let mut ports = HashMap::new();
        for (key, url) in &readdress.map {
            let index = open_among(destinations, url, "map", &socket)?;
            match parse_key(key)? {
                Key::Exact(a) => exact.insert(a, index),
                Key::Port(p) => ports.insert(p, index),
            };
        }
        Ok(AddressRouting {
            exact,
            ports,
            default,
            cache: HashMap::new(),
            socket,
        })
    }

    /// Where a record on `topic` goes; `opened` is called with the index of
    /// a destination opened now. `Err`: the topic's address could not be
    /// opened (said once; the topic then goes nowhere).
    pub(super) fn route(
        &mut self,
        topic: &str,
        destinations: &mut Vec<Destination>,
        mut opened: impl FnMut(usize),
    ) -> std::result::Result<Option<usize>, Error> {
        if let Some(&hit) = self.cache.get(topic) {
            return Ok(hit);
        }
        let Ok(addr) = topic.parse::<SocketAddr>() else {
            self.cache.insert(topic.into(), None);
            return Ok(None);
        };
        let known = self
            .exact
            .get(&addr)
            .or_else(|| self.ports.get(&addr.port()))
            .copied()
            .or(self.default);
        let index = match known {
            Some(i) => i,
            None => {
                let before = destinations.len();
                let url = format!("udp://{addr}");
                match open_among(destinations, &url, "destination", &self.socket) {
                    Ok(i) => {
                        if destinations.len() > before {
                            opened(i);
                        }
                        i
                    }
                    Err(e) => {
                        self.cache.insert(topic.into(), None);
                        return Err(e);
                    }
                }
            }
        };
        self.cache.insert(topic.into(), Some(index));
        Ok(Some(index))
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::sink::Delivery;
    use crate::net::udp::{Readdress, UdpSink, UdpSinkOptions};
    use crate::Record;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn receiver() -> (UdpSocket, String) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let addr = s.local_addr().unwrap().to_string();
        (s, addr)
    }

    fn recv(s: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0u8; 70000];
        let n = s.recv(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn record(topic: &str, payload: &[u8]) -> Record {
        Record {
            time_ns: 0,
            stream: 0,
            topic: topic.into(),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn raw_payloads_go_to_their_topics_addresses_or_are_rewritten() {
        let (original, original_addr) = receiver();
        let (exact, exact_addr) = receiver();
        let (by_port, by_port_addr) = receiver();
        let opts = UdpSinkOptions {
            raw: true,
            readdress: Some(Readdress {
                map: vec![
                    ("10.9.9.9:26000".into(), format!("udp://{exact_addr}")),
                    ("*:26001".into(), format!("udp://{by_port_addr}")),
                ],
            }),
            ..UdpSinkOptions::default()
        };
        let mut sink = UdpSink::new(opts, &[]).unwrap();
        let d = Delivery::default();
        sink.send(&record(&original_addr, b"\x00raw, not msgpack"), d);
        sink.send(&record("10.9.9.9:26000", b"exact"), d);
        sink.send(&record("10.1.1.1:26001", b"port"), d);
        sink.send(&record("10.9.9.9:26001", b"exact address, other port"), d);
        sink.send(&record(&original_addr, b""), d);
        sink.send(&record("not an address", b"x"), d);
        sink.send(&record(&original_addr, &vec![1u8; 65_508]), d);
        assert_eq!(recv(&original), b"\x00raw, not msgpack");
        assert_eq!(recv(&exact), b"exact");
        assert_eq!(recv(&by_port), b"port");
        assert_eq!(recv(&by_port), b"exact address, other port");
        assert_eq!(recv(&original), b"", "an empty datagram is a datagram");
        let s = sink.stats().snapshot();
        assert_eq!(
            (s.records, s.records_sent, s.unrouted, s.invalid),
            (7, 5, 1, 1)
        );
        assert!(s.last_error.unwrap().contains("65508 bytes"));
        assert_eq!(sink.destinations().len(), 3);
    }

    #[test]
    fn one_destination_takes_what_the_map_does_not() {
        let (to, to_addr) = receiver();
        let (mapped, mapped_addr) = receiver();
        let opts = UdpSinkOptions {
            raw: true,
            destination: Some(format!("udp://{to_addr}")),
            readdress: Some(Readdress {
                map: vec![("[::1]:5000".into(), format!("udp://{mapped_addr}"))],
            }),
            ..UdpSinkOptions::default()
        };
        let mut sink = UdpSink::new(opts, &[]).unwrap();
        sink.send(&record("192.0.2.1:26000", b"a"), Delivery::default());
        sink.send(&record("[::1]:5000", b"b"), Delivery::default());
        assert_eq!(recv(&to), b"a");
        assert_eq!(recv(&mapped), b"b");
    }

    #[test]
    fn bad_maps_are_rejected() {
        let err = |map: Vec<(String, String)>, routes: bool| {
            let mut opts = UdpSinkOptions {
                raw: true,
                readdress: Some(Readdress { map }),
                ..UdpSinkOptions::default()
            };
            if routes {
                opts.routes.push(crate::net::udp::Route {
                    message_type: None,
                    topic: Some("t".into()),
                    destination: "udp://127.0.0.1:9".into(),
                });
            }
            UdpSink::new(opts, &[]).err().unwrap().to_string()
        };
        let to = "udp://127.0.0.1:9".to_string();
        assert!(err(vec![("10.0.0.1".into(), to.clone())], false).contains("'10.0.0.1': expected"));
        assert!(err(vec![("*:x".into(), to.clone())], false).contains("after '*:'"));
        assert!(err(vec![("*:1".into(), "10.0.0.1:1".into())], false).contains("invalid 'map'"));
        assert!(err(vec![], true).contains("exclude each other"));
    }
}
