//! Where records go: routes by message type and topic, and one socket per
//! destination.
//!
//! Each destination has its own socket, connected when the kernel allows it
//! (a connected UDP socket reports ICMP "port unreachable" as ECONNREFUSED on
//! a later send, and skips a route lookup per datagram); a destination that
//! cannot be connected (no route yet) is sent to with `sendto` instead.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::net::endpoint::{socket_error, Endpoint, Interface};
use crate::record::StreamTable;
use crate::sys::set_multicast_if_v4_index;
use crate::{Error, Result, StreamInfo};

/// One blocking send waits at most this long before looking at stop
/// requests: the socket's send timeout, the slice of the waits in send.rs.
const SEND_SLICE: Duration = Duration::from_millis(20);

/// Sends records of a message type and/or topic to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Message type (the stream's `>>> Type`); `None` matches any type.
    pub message_type: Option<String>,
    /// Topic; `None` matches any topic.
    pub topic: Option<String>,
    /// `udp://host:port`.
    pub destination: String,
}

/// How every destination's socket is set up: the sink's options that
/// concern sockets.
#[derive(Clone)]
pub(super) struct SocketOptions {
    pub(super) hop_limit: u32,
    pub(super) unicast_hops: Option<u32>,
    pub(super) interface: Option<Interface>,
    pub(super) multicast_loop: bool,
    pub(super) send_buffer_bytes: Option<usize>,
}

/// A destination and its socket.
pub(super) struct Destination {
    pub(super) url: String,
    pub(super) addr: SocketAddr,
    pub(super) target: SockAddr,
    pub(super) socket: Socket,
    pub(super) connected: bool,
}

pub(super) fn open_destination(
    endpoint: &Endpoint,
    options: &SocketOptions,
) -> Result<Destination> {
    let url = endpoint.url.as_str();
    let addr = endpoint.addr;
    let fail = |action: &str, e: io::Error| socket_error(url, action, &e);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail("create a UDP socket", e))?;
    socket
        .set_write_timeout(Some(SEND_SLICE))
        .map_err(|e| fail("set the send timeout", e))?;
    if let Some(size) = options.send_buffer_bytes {
        socket
            .set_send_buffer_size(size)
            .map_err(|e| fail("set the send buffer size", e))?;
    }
    let ip = addr.ip();
    if ip.is_multicast() {
        if addr.is_ipv4() {
            socket
                .set_multicast_ttl_v4(options.hop_limit)
                .map_err(|e| fail("set the multicast TTL", e))?;
            socket
                .set_multicast_loop_v4(options.multicast_loop)
                .map_err(|e| fail("set multicast loopback", e))?;
            match options.interface {
                Some(Interface::Ipv4(a)) => socket.set_multicast_if_v4(&a),
                Some(Interface::Index(i)) => set_multicast_if_v4_index(&socket, i),
                None => Ok(()),
            }
            .map_err(|e| fail("select the multicast interface", e))?;
        } else {
            socket
                .set_multicast_hops_v6(options.hop_limit)
                .map_err(|e| fail("set the multicast hop limit", e))?;
            socket
                .set_multicast_loop_v6(options.multicast_loop)
                .map_err(|e| fail("set multicast loopback", e))?;
            match options.interface {
                Some(Interface::Index(i)) => socket
                    .set_multicast_if_v6(i)
                    .map_err(|e| fail("select the multicast interface", e))?,
                Some(Interface::Ipv4(a)) => {
                    return Err(Error::invalid(
                        "interface",
                        format!(
                            "'{a}' is an IPv4 address; IPv6 multicast to '{url}' needs an interface name or index"
                        ),
                    ))
                }
                None => {}
            }
        }
    } else if let Some(hops) = options.unicast_hops {
        if addr.is_ipv4() {
            socket.set_ttl_v4(hops)
        } else {
            socket.set_unicast_hops_v6(hops)
        }
        .map_err(|e| fail("set the unicast hop limit", e))?;
    }
    let target = SockAddr::from(addr);
    let connected = socket.connect(&target).is_ok();
    Ok(Destination {
        url: url.to_string(),
        addr,
        target,
        socket,
        connected,
    })
}

/// Opens `url` among `destinations` (one socket per address); its index.
pub(super) fn open_among(
    destinations: &mut Vec<Destination>,
    url: &str,
    name: &'static str,
    socket: &SocketOptions,
) -> Result<usize> {
    let endpoint = Endpoint::parse(url, name, false)?;
    if let Some(i) = destinations.iter().position(|d| d.addr == endpoint.addr) {
        return Ok(i);
    }
    destinations.push(open_destination(&endpoint, socket)?);
    Ok(destinations.len() - 1)
}

/// The routes of one stream (message type).
pub(super) struct StreamRoutes {
    /// Topic → destination.
    by_topic: HashMap<Box<str>, usize>,
    /// For the stream's other topics.
    fallback: Option<usize>,
}

/// Where each record goes.
pub(super) struct Routing {
    default: Option<usize>,
    /// Per stream index.
    streams: Vec<StreamRoutes>,
    /// For records of unknown streams.
    by_topic: HashMap<Box<str>, usize>,
    /// Routes by type, and by type and topic, for streams defined later.
    by_type: HashMap<Box<str>, usize>,
    by_type_topic: Vec<(Box<str>, Box<str>, usize)>,
    /// Where streams defined as the source is read appear.
    pub(super) table: Option<Arc<StreamTable>>,
}

impl Routing {
    /// Open a socket for every destination (resolving host names now),
    /// one per address, and route to them: `default` for records no route
    /// takes. `streams` maps a record's `stream` to its message type.
    pub(super) fn open(
        default: Option<&str>,
        routes: &[Route],
        streams: &[StreamInfo],
        socket: &SocketOptions,
    ) -> Result<(Vec<Destination>, Routing)> {
        let mut destinations: Vec<Destination> = Vec::new();
        let mut open =
            |url: &str, name: &'static str| open_among(&mut destinations, url, name, socket);
        let default = default.map(|u| open(u, "destination")).transpose()?;
        let mut by_topic: HashMap<Box<str>, usize> = HashMap::new();
        let mut by_type: HashMap<Box<str>, usize> = HashMap::new();
        let mut by_type_topic: Vec<(Box<str>, Box<str>, usize)> = Vec::new();
        for route in routes {
            let d = open(&route.destination, "routes")?;
            match (route.message_type.as_deref(), route.topic.as_deref()) {
                (None, None) => {
                    return Err(Error::invalid(
                        "routes",
                        format!(
                            "the route to '{}' names neither a message type nor a topic",
                            route.destination
                        ),
                    ))
                }
                (None, Some(topic)) => {
                    by_topic.insert(topic.into(), d);
                }
                (Some(t), None) => {
                    by_type.insert(t.into(), d);
                }
                (Some(t), Some(topic)) => {
                    // A later route of the same type and topic wins, as before.
                    by_type_topic.retain(|(rt, rtopic, _)| (&**rt, &**rtopic) != (t, topic));
                    by_type_topic.push((t.into(), topic.into(), d));
                }
            }
        }
        let mut routing = Routing {
            default,
            streams: Vec::new(),
            by_topic,
            by_type,
            by_type_topic,
            table: None,
        };
        routing.streams = streams
            .iter()
            .map(|s| routing.routes_of(s.message_type.as_deref()))
            .collect();
        Ok((destinations, routing))
    }

    fn routes_of(&self, message_type: Option<&str>) -> StreamRoutes {
        let mut by_topic = self.by_topic.clone();
        let mut fallback = self.default;
        if let Some(t) = message_type {
            for (rt, topic, d) in &self.by_type_topic {
                if **rt == *t {
                    by_topic.insert(topic.clone(), *d);
                }
            }
            if let Some(d) = self.by_type.get(t) {
                fallback = Some(*d);
            }
        }
        StreamRoutes { by_topic, fallback }
    }

    pub(super) fn route(&mut self, stream: u32, topic: &str) -> Option<usize> {
        let index = stream as usize;
        if index >= self.streams.len() {
            // A stream defined since: once per stream, not per record.
            if let Some(table) = &self.table {
                for t in table.types_from(self.streams.len()) {
                    let routes = self.routes_of(t.as_deref());
                    self.streams.push(routes);
                }
            }
        }
        match self.streams.get(index) {
            Some(s) => s.by_topic.get(topic).copied().or(s.fallback),
            None => self.by_topic.get(topic).copied().or(self.default),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::net::udp::tests::streams;
    use crate::net::udp::{Route, UdpSink, UdpSinkOptions};
    use crate::record::StreamTable;
    use std::sync::Arc;

    #[test]
    fn routes_take_precedence_in_order() {
        let opts = UdpSinkOptions {
            destination: Some("udp://127.0.0.1:9001".into()),
            routes: vec![
                Route {
                    message_type: Some("A".into()),
                    topic: None,
                    destination: "udp://127.0.0.1:9002".into(),
                },
                Route {
                    message_type: None,
                    topic: Some("x".into()),
                    destination: "udp://127.0.0.1:9003".into(),
                },
                Route {
                    message_type: Some("A".into()),
                    topic: Some("x".into()),
                    destination: "udp://127.0.0.1:9004".into(),
                },
                Route {
                    message_type: Some("B".into()),
                    topic: None,
                    destination: "udp://127.0.0.1:9001/".into(),
                },
            ],
            ..UdpSinkOptions::default()
        };
        let mut sink = UdpSink::new(opts.clone(), &streams()).unwrap();
        let mut port = |s: u32, t: &str| sink.route(s, t).map(|a| a.port());
        assert_eq!(port(0, ""), Some(9002));
        assert_eq!(port(0, "x"), Some(9004));
        assert_eq!(port(1, "x"), Some(9003));
        assert_eq!(port(1, ""), Some(9001));
        assert_eq!(port(7, "x"), Some(9003));
        assert_eq!(port(7, "y"), Some(9001));
        // Duplicate addresses share one socket.
        assert_eq!(sink.destinations().len(), 4);

        // Streams defined after the sink was made (a source read from JS)
        // are routed by their types as soon as they appear.
        let table = Arc::new(StreamTable::default());
        let mut late = UdpSink::new(opts, &[])
            .unwrap()
            .with_stream_table(table.clone());
        assert_eq!(
            late.route(0, "").map(|a| a.port()),
            Some(9001),
            "unknown: default"
        );
        assert_eq!(table.define(Some("B")), 0);
        assert_eq!(table.define(Some("A")), 1);
        assert_eq!(table.define(Some("B")), 0, "defined once");
        assert_eq!(late.route(1, "x").map(|a| a.port()), Some(9004));
        assert_eq!(late.route(1, "").map(|a| a.port()), Some(9002));
        assert_eq!(late.route(0, "").map(|a| a.port()), Some(9001));
    }
}
