//! `Listener`: receives MCL datagrams on a native thread.
//!
//! Binds one socket per address (`udp://` URLs, see [`crate::net::Endpoint`]);
//! for a multicast address it binds the group address itself (so a socket
//! sees only its group, although MCL puts every message type on port 26000)
//! and joins the group on the chosen interface, IPv4 or IPv6. One thread
//! polls every socket and a wake-up socket, so [`Listener::stop`] returns
//! promptly. Each datagram is decoded ([`crate::format::wire`]); fragments go
//! through a [`Reassembler`]; each message reaches the [`Handler`] with its
//! receive time (CLOCK_MONOTONIC ns, like [`crate::sys::now_ns`]) and its
//! source. Garbage datagrams are counted, never fatal.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

use crate::format::reassembly::{Reassembler, ReassemblyOptions, ReassemblyStats};
use crate::format::wire::{decode_datagram, Datagram};
use crate::net::endpoint::{socket_error, Endpoint, Interface};
use crate::sys::now_ns;
use crate::Counter;
use crate::{Error, Result};

/// Options of a [`Listener`].
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// `udp://` URLs to bind: unicast (`udp://127.0.0.1:26000`,
    /// `udp://[::]:26000`) or multicast groups (joined). Port 0 picks a free
    /// port (see [`Listener::local_addrs`]).
    pub addresses: Vec<String>,
    /// Interface for multicast groups: name, index, or (IPv4) address;
    /// `None`: the system's choice.
    pub interface: Option<String>,
    /// `SO_REUSEADDR`; `None`: on for multicast (several listeners of a
    /// group on one host, as MCL does), off for unicast (a port in use is
    /// an error).
    pub reuse_address: Option<bool>,
    /// `SO_RCVBUF`; `None`: the system default (MCL advises 2 MB).
    pub recv_buffer_bytes: Option<usize>,
    pub reassembly: ReassemblyOptions,
    /// How often the thread expires incomplete messages and calls
    /// [`Handler::on_idle`] when no data arrives. Short, because that is also
    /// when a JS handler's held batch goes out if JS was busy; a recorder
    /// flushes its files then, which costs nothing when nothing arrived.
    pub tick: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            addresses: Vec::new(),
            interface: None,
            reuse_address: None,
            recv_buffer_bytes: None,
            reassembly: ReassemblyOptions::default(),
            tick: Duration::from_millis(20),
        }
    }
}

/// A received message, borrowed from the receive buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub topic: &'a str,
    /// The msgpack encoding of the message, as sent.
    pub payload: &'a [u8],
    /// CLOCK_MONOTONIC ns when its (last) datagram was read.
    pub received_at_ns: i64,
    pub source: SocketAddr,
    /// Index of the address (in [`ListenerOptions::addresses`]) it came in on.
    pub socket: usize,
    /// 1 for a whole datagram, else the number of fragments joined.
    pub fragments: u32,
}

/// An owned [`Received`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub received_at_ns: i64,
    pub source: SocketAddr,
    pub socket: usize,
    pub fragments: u32,
}

impl Received<'_> {
    pub fn to_owned_message(&self) -> ReceivedMessage {
        ReceivedMessage {
            topic: self.topic.to_string(),
            payload: self.payload.to_vec(),
            received_at_ns: self.received_at_ns,
            source: self.source,
            socket: self.socket,
            fragments: self.fragments,
        }
    }
}

/// Receives messages on the listener thread.
pub trait Handler: Send + 'static {
    /// Take one message; false if it was dropped (counted as `handler_dropped`).
    fn on_message(&mut self, message: &Received<'_>) -> bool;
    /// Called at least every `tick` (e.g. to flush files).
    fn on_idle(&mut self) {}
}

impl<F> Handler for F
where
    F: FnMut(&Received<'_>) + Send + 'static,
{
    fn on_message(&mut self, message: &Received<'_>) -> bool {
        self(message);
        true
    }
}

/// Hands messages to a bounded channel; drops (and counts) when it is full.
pub struct ChannelHandler {
    sender: SyncSender<ReceivedMessage>,
}

impl Handler for ChannelHandler {
    fn on_message(&mut self, message: &Received<'_>) -> bool {
        match self.sender.try_send(message.to_owned_message()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// Statistics of a listener: written by its thread, readable anywhere.
#[derive(Default)]
pub struct ListenerStats {
    pub datagrams: Counter,
    pub bytes: Counter,
    /// Messages handed to the handler (whole or reassembled).
    pub messages: Counter,
    /// Datagrams that are not MCL datagrams.
    pub garbage: Counter,
    /// Messages the handler refused (a full channel).
    pub handler_dropped: Counter,
    pub recv_errors: Counter,
    pub reassembly: Arc<ReassemblyStats>,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`ListenerStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    pub datagrams: u64,
    pub bytes: u64,
    pub messages: u64,
    pub garbage: u64,
    pub handler_dropped: u64,
    pub recv_errors: u64,
    pub fragments: u64,
    pub reassembled: u64,
    pub duplicate_fragments: u64,
    /// Messages lost in reassembly (timed out, evicted, inconsistent, too
    /// large, invalid).
    pub reassembly_dropped: u64,
    pub reassembly_timed_out: u64,
    pub pending_messages: u64,
    pub pending_bytes: u64,
    /// The last garbage datagram or receive error, described.
    pub last_error: Option<String>,
}

impl ListenerStats {
    pub fn snapshot(&self) -> ListenerSnapshot {
        let r = &self.reassembly;
        ListenerSnapshot {
            datagrams: self.datagrams.get(),
            bytes: self.bytes.get(),
            messages: self.messages.get(),
            garbage: self.garbage.get(),
            handler_dropped: self.handler_dropped.get(),
            recv_errors: self.recv_errors.get(),
            fragments: r.fragments.get(),
            reassembled: r.completed.get(),
            duplicate_fragments: r.duplicates.get(),
            reassembly_dropped: r.dropped(),
            reassembly_timed_out: r.timed_out.get(),
            pending_messages: r.pending_sets(),
            pending_bytes: r.pending_bytes(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn note_error(&self, text: impl FnOnce() -> String) {
        if let Ok(mut slot) = self.last_error.try_lock() {
            *slot = Some(text());
        }
    }
}

fn open_socket(
    endpoint: &Endpoint,
    options: &ListenerOptions,
    interface: Option<Interface>,
) -> Result<UdpSocket> {
    let url = endpoint.url.as_str();
    let fail = |action: &str, e: io::Error| socket_error(url, action, &e);
    let mut addr = endpoint.addr;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail("create a UDP socket", e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(true)
            .map_err(|e| fail("set IPV6_V6ONLY", e))?;
    }
    let multicast = endpoint.is_multicast();
    socket
        .set_reuse_address(options.reuse_address.unwrap_or(multicast))
        .map_err(|e| fail("set SO_REUSEADDR", e))?;
    if let Some(size) = options.recv_buffer_bytes {
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| fail("set the receive buffer size", e))?;
    }
    let index = interface.and_then(|i| i.index());
    if let (SocketAddr::V6(v6), true, Some(i)) = (&mut addr, multicast, index) {
        if v6.scope_id() == 0 {
            *v6 = SocketAddrV6::new(*v6.ip(), v6.port(), 0, i);
        }
    }
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    if multicast {
        match addr {
            SocketAddr::V4(v4) => {
                let iface = match interface {
                    Some(Interface::Index(i)) => InterfaceIndexOrAddress::Index(i),
                    Some(Interface::Ipv4(a)) => InterfaceIndexOrAddress::Address(a),
                    None => InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED),
                };
                socket
                    .join_multicast_v4_n(v4.ip(), &iface)
                    .map_err(|e| fail("join the multicast group", e))?;
                #[cfg(target_os = "linux")]
                socket
                    .set_multicast_all_v4(false)
                    .map_err(|e| fail("set IP_MULTICAST_ALL", e))?;
            }
            SocketAddr::V6(v6) => {
                if let Some(Interface::Ipv4(a)) = interface {
                    return Err(Error::invalid(
                        "interface",
                        format!("'{a}' is an IPv4 address; joining '{url}' needs an interface name or index"),
                    ));
                }
                socket
                    .join_multicast_v6(v6.ip(), index.unwrap_or(0))
                    .map_err(|e| fail("join the multicast group", e))?;
                #[cfg(target_os = "linux")]
                socket
                    .set_multicast_all_v6(false)
                    .map_err(|e| fail("set IPV6_MULTICAST_ALL", e))?;
            }
        }
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("make the socket non-blocking", e))?;
    Ok(socket.into())
}

/// Datagrams read from one socket before the others get their turn.
const BURST: usize = 256;
/// Larger than any UDP datagram (65507 bytes over IPv4, 65527 over IPv6).
const RECV_BUFFER: usize = 65_536;

struct Worker<H> {
    sockets: Vec<UdpSocket>,
    wake: UnixDatagram,
    stop: Arc<AtomicBool>,
    stats: Arc<ListenerStats>,
    reassembler: Reassembler,
    handler: H,
    tick: Duration,
}

impl<H: Handler> Worker<H> {
    fn run(mut self) -> H {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.wake.as_raw_fd())
            .chain(self.sockets.iter().map(|s| s.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut buf = vec![0u8; RECV_BUFFER];
        let tick_ms = self.tick.as_millis().clamp(1, 1000) as libc::c_int;
        let tick_ns = self.tick.as_nanos().min(i64::MAX as u128) as i64;
        let mut last_idle = now_ns();
        while !self.stop.load(Ordering::Acquire) {
            // SAFETY: `fds` is a valid, exclusively borrowed array of
            // `fds.len()` pollfd entries for the duration of the call, and
            // every fd in it is owned by `self` and open.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tick_ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    self.stats.recv_errors.add(1);
                    self.stats.note_error(|| format!("poll failed: {err}"));
                    std::thread::sleep(self.tick);
                }
                continue;
            }
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            if fds[0].revents != 0 {
                let mut sink = [0u8; 16];
                while self.wake.recv(&mut sink).is_ok() {}
            }
            for i in 0..self.sockets.len() {
                if fds[i + 1].revents != 0 {
                    self.drain(i, &mut buf);
                }
            }
            let now = now_ns();
            self.reassembler.expire(now);
            if now - last_idle >= tick_ns || rc == 0 {
                self.handler.on_idle();
                last_idle = now;
            }
        }
        self.handler.on_idle();
        self.handler
    }

    fn drain(&mut self, index: usize, buf: &mut [u8]) {
        for _ in 0..BURST {
            let (n, source) = match self.sockets[index].recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.recv_errors.add(1);
                    self.stats.note_error(|| format!("receive failed: {e}"));
                    return;
                }
            };
            let now = now_ns();
            self.stats.datagrams.add(1);
            self.stats.bytes.add(n as u64);
            let message = match decode_datagram(&buf[..n]) {
                Ok(Datagram::Whole { topic, payload }) => Received {
                    topic,
                    payload,
                    received_at_ns: now,
                    source,
                    socket: index,
                    fragments: 1,
                },
                Ok(Datagram::Fragment {
                    topic,
                    index: n,
                    total,
                    bytes,
                }) => {
                    let Some(done) = self.reassembler.push(source, topic, n, total, bytes, now)
                    else {
                        continue;
                    };
                    self.stats.messages.add(1);
                    let message = Received {
                        topic: &done.topic,
                        payload: &done.payload,
                        received_at_ns: now,
                        source,
                        socket: index,
                        fragments: done.fragments,
                    };
                    if !self.handler.on_message(&message) {
                        self.stats.handler_dropped.add(1);
                    }
                    continue;
                }
                Err(e) => {
                    self.stats.garbage.add(1);
                    self.stats
                        .note_error(|| format!("garbage datagram of {n} bytes from {source}: {e}"));
                    continue;
                }
            };
            self.stats.messages.add(1);
            if !self.handler.on_message(&message) {
                self.stats.handler_dropped.add(1);
            }
        }
    }
}

/// A running receive thread; see the module documentation.
pub struct Listener<H: Handler> {
    thread: Option<JoinHandle<H>>,
    wake: UnixDatagram,
    stop: Arc<AtomicBool>,
    stats: Arc<ListenerStats>,
    local: Vec<SocketAddr>,
}

impl<H: Handler> Listener<H> {
    /// Bind every address, join the multicast groups and start the thread.
    /// Fails (with every socket closed again) if any address cannot be
    /// bound or joined.
    pub fn start(options: ListenerOptions, handler: H) -> Result<Self> {
        if options.addresses.is_empty() {
            return Err(Error::invalid(
                "addresses",
                "a listener needs at least one udp:// address",
            ));
        }
        if options.tick.is_zero() {
            return Err(Error::invalid("tick", "must be > 0"));
        }
        let interface = options
            .interface
            .as_deref()
            .map(Interface::parse)
            .transpose()?;
        let stats = Arc::new(ListenerStats::default());
        let reassembler = Reassembler::with_stats(options.reassembly, stats.reassembly.clone())?;
        let mut sockets = Vec::new();
        let mut local = Vec::new();
        for url in &options.addresses {
            let endpoint = Endpoint::parse(url, "addresses", true)?;
            let socket = open_socket(&endpoint, &options, interface)?;
            local.push(
                socket
                    .local_addr()
                    .map_err(|e| socket_error(url, "read the bound address", &e))?,
            );
            sockets.push(socket);
        }
        let (wake, wake_rx) = UnixDatagram::pair()
            .and_then(|(a, b)| b.set_nonblocking(true).map(|()| (a, b)))
            .map_err(|e| {
                Error::State(format!("cannot create the listener's wake-up socket: {e}"))
            })?;
        wake.set_nonblocking(true).map_err(|e| {
            Error::State(format!("cannot create the listener's wake-up socket: {e}"))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            sockets,
            wake: wake_rx,
            stop: stop.clone(),
            stats: stats.clone(),
            reassembler,
            handler,
            tick: options.tick,
        };
        let thread = std::thread::Builder::new()
            .name("netreplay-listener".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::State(format!("cannot start the listener thread: {e}")))?;
        Ok(Listener {
            thread: Some(thread),
            wake,
            stop,
            stats,
            local,
        })
    }

    pub fn stats(&self) -> &Arc<ListenerStats> {
        &self.stats
    }

    /// The bound addresses, in the order of [`ListenerOptions::addresses`]
    /// (with the actual port where port 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn shutdown(&mut self) -> Option<std::thread::Result<H>> {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(&[1]);
        self.thread.take().map(|t| t.join())
    }

    /// Stop the thread, close the sockets and give the handler back.
    pub fn stop(mut self) -> Result<H> {
        match self.shutdown() {
            Some(Ok(handler)) => Ok(handler),
            Some(Err(_)) => Err(Error::State(
                "the listener thread panicked (in its handler)".into(),
            )),
            None => Err(Error::State("the listener was already stopped".into())),
        }
    }
}

impl Listener<ChannelHandler> {
    /// A listener whose messages arrive on a bounded channel of `capacity`;
    /// when it is full, messages are dropped and counted.
    pub fn channel(
        options: ListenerOptions,
        capacity: usize,
    ) -> Result<(Self, Receiver<ReceivedMessage>)> {
        if capacity == 0 {
            return Err(Error::invalid("capacity", "must be at least 1"));
        }
        let (sender, receiver) = sync_channel(capacity);
        let listener = Listener::start(options, ChannelHandler { sender })?;
        Ok((listener, receiver))
    }
}

impl<H: Handler> Drop for Listener<H> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn options(url: &str) -> ListenerOptions {
        ListenerOptions {
            addresses: vec![url.into()],
            ..ListenerOptions::default()
        }
    }

    struct Count(u32);

    impl Handler for Count {
        fn on_message(&mut self, _: &Received<'_>) -> bool {
            self.0 += 1;
            true
        }
    }

    #[test]
    fn stop_is_prompt_and_returns_the_handler() {
        let listener = Listener::start(
            ListenerOptions {
                tick: Duration::from_secs(1),
                ..options("udp://127.0.0.1:0")
            },
            Count(0),
        )
        .unwrap();
        assert!(listener.is_running());
        let addr = listener.local_addrs()[0];
        assert_ne!(addr.port(), 0);
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(&[0x92, 0xc0, 0x01], addr).unwrap();
        let t = Instant::now();
        while listener.stats().messages.get() < 1 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        let handler = listener.stop().unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(handler.0, 1);
    }

    #[test]
    fn bad_options_are_rejected() {
        let err = |o: ListenerOptions| match Listener::start(o, |_: &Received<'_>| {}) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("started"),
        };
        assert!(err(ListenerOptions::default()).contains("at least one"));
        assert!(err(options("udp://127.0.0.1:x")).contains("not a number"));
        assert!(err(ListenerOptions {
            interface: Some("nosuchif0".into()),
            ..options("udp://127.0.0.1:0")
        })
        .contains("nosuchif0"));
        assert!(matches!(
            Listener::channel(options("udp://127.0.0.1:0"), 0),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
