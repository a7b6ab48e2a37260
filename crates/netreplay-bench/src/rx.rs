//! The UDP receiver: SO_TIMESTAMPNS via batched `recvmmsg` (Linux only).

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::clock::{self, RealToMono};
use crate::{seq_of, Arrival, Reception, RxOptions, RxSummary};

/// Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6
/// without jumbograms), so no datagram is truncated.
const DATA_BUF_LEN: usize = 64 * 1024;

/// Datagrams per `recvmmsg` call: 64 slots of [`DATA_BUF_LEN`] are 4 MiB of
/// address space, allocated once per `receive`.
const BATCH_LEN: usize = 64;

/// Preallocated arrivals when `expect` is not given: 1 Mi × 24 bytes of
/// address space, touched only as datagrams arrive.
const DEFAULT_CAPACITY: u64 = 1 << 20;

/// Cap on the preallocation for a huge `expect`; beyond it the Vec grows.
const MAX_PREALLOCATED: u64 = 1 << 26;

/// Room for the SCM_TIMESTAMPNS message (32 bytes on 64-bit) with margin;
/// u64 elements give the cmsghdr alignment `CMSG_FIRSTHDR` expects.
type ControlBuf = [u64; 16];

/// `cmsg_len` of a control message carrying one timespec.
// SAFETY: CMSG_LEN is pure arithmetic on its argument; it is `unsafe` only
// because libc declares all CMSG_* helpers that way.
const STAMP_CMSG_LEN: libc::c_uint =
    unsafe { libc::CMSG_LEN(mem::size_of::<libc::timespec>() as libc::c_uint) };

/// A failed receiver step and the OS error behind it.
#[derive(Debug)]
pub struct RxError {
    /// What was being done, e.g. "bind 127.0.0.1:80".
    pub what: String,
    pub source: io::Error,
}

impl RxError {
    fn new(what: impl Into<String>, source: io::Error) -> Self {
        RxError {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for RxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}: {}", self.what, self.source)
    }
}

impl std::error::Error for RxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A bound UDP socket that timestamps every datagram in the kernel.
pub struct Receiver {
    socket: Socket,
    local: SocketAddr,
    opts: RxOptions,
}

/// A datagram before the realtime→monotonic conversion, which needs the end
/// offset measurement and so happens after the loop.
#[derive(Clone, Copy)]
struct RawArrival {
    seq: u32,
    len: u32,
    /// CLOCK_REALTIME if `kernel_stamp`, else CLOCK_MONOTONIC.
    ns: i64,
    kernel_stamp: bool,
}

impl Receiver {
    /// Create the socket, set its receive buffer and timestamping, and bind.
    /// Timestamping is enabled before the bind so that no datagram can
    /// arrive unstamped.
    pub fn bind(opts: RxOptions) -> Result<Receiver, RxError> {
        for (name, value) in [("idle", opts.idle), ("first_timeout", opts.first_timeout)] {
            // SO_RCVTIMEO treats zero as "block forever".
            if value.is_zero() {
                return Err(RxError::new(
                    format!("use {name} timeout 0"),
                    io::Error::new(io::ErrorKind::InvalidInput, "must be > 0"),
                ));
            }
        }
        let rcvbuf = libc::c_int::try_from(opts.rcvbuf).map_err(|_| {
            RxError::new(
                format!("set receive buffer to {} bytes", opts.rcvbuf),
                io::Error::new(io::ErrorKind::InvalidInput, "larger than 2147483647"),
            )
        })?;

        let socket = Socket::new(
            Domain::for_address(opts.addr),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(|e| RxError::new("create a UDP socket", e))?;
        // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN.
        if set_int_option(socket.as_raw_fd(), libc::SO_RCVBUFFORCE, rcvbuf).is_err() {
            socket
                .set_recv_buffer_size(opts.rcvbuf)
                .map_err(|e| RxError::new(format!("set SO_RCVBUF to {rcvbuf}"), e))?;
        }
        set_int_option(socket.as_raw_fd(), libc::SO_TIMESTAMPNS, 1)
            .map_err(|e| RxError::new("enable SO_TIMESTAMPNS", e))?;
        socket
            .bind(&SockAddr::from(opts.addr))
            .map_err(|e| RxError::new(format!("bind {}", opts.addr), e))?;
        let local = socket
            .local_addr()
            .map_err(|e| RxError::new("read the bound address", e))?
            .as_socket()
            .ok_or_else(|| {
                RxError::new(
                    "read the bound address",
                    io::Error::other("not an IP address"),
                )
            })?;
        Ok(Receiver {
            socket,
            local,
            opts,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// The kernel's receive buffer size as reported by SO_RCVBUF; Linux
    /// reports twice the usable payload space requested.
    pub fn rcvbuf_bytes(&self) -> io::Result<usize> {
        self.socket.recv_buffer_size()
    }

    /// Receive until `expect` datagrams arrived, or `idle` passed without one
    /// after the first, or `first_timeout` passed without any.
    ///
    /// Datagrams are taken in batches of up to [`BATCH_LEN`] per `recvmmsg`,
    /// which waits (under SO_RCVTIMEO) only for the first datagram of a batch
    /// and then takes whatever else is already queued. With `expect`, a batch
    /// never asks for more than the datagrams still missing, so the receiver
    /// takes exactly `expect` datagrams off the socket and anything sent
    /// beyond them stays unread in the socket queue, as with one `recvmsg`
    /// per datagram.
    pub fn receive(&mut self) -> Result<Reception, RxError> {
        let start = clock::measure_offset();
        let expect = self.opts.expect;
        let capacity = if expect > 0 { expect } else { DEFAULT_CAPACITY }.min(MAX_PREALLOCATED);
        let mut raw: Vec<RawArrival> = Vec::new();
        raw.try_reserve_exact(capacity as usize).map_err(|_| {
            RxError::new(
                format!("preallocate room for {capacity} arrivals"),
                io::Error::from(io::ErrorKind::OutOfMemory),
            )
        })?;
        let mut batch = Batch::new();
        let fd = self.socket.as_raw_fd();

        // The timeout that applies now, and whether SO_RCVTIMEO currently
        // holds a shortened remainder of it (after EINTR).
        let mut wait = self.opts.first_timeout;
        let mut wait_from = start.mono_ns;
        let mut shortened = false;
        self.set_timeout(wait)?;

        let mut no_timestamp = 0u64;
        while expect == 0 || (raw.len() as u64) < expect {
            let missing = if expect == 0 {
                BATCH_LEN
            } else {
                // Less than BATCH_LEN fits in usize whatever `expect` is.
                (expect - raw.len() as u64).min(BATCH_LEN as u64) as usize
            };
            match batch.receive(fd, missing) {
                Ok(count) => {
                    let after = clock::mono_ns();
                    let first = raw.is_empty();
                    for i in 0..count {
                        let (datagram, kernel_real_ns) = batch.datagram(i);
                        let (ns, kernel_stamp) = match kernel_real_ns {
                            Some(real) => (real, true),
                            None => {
                                no_timestamp += 1;
                                (after, false)
                            }
                        };
                        raw.push(RawArrival {
                            seq: seq_of(datagram),
                            len: datagram.len() as u32,
                            ns,
                            kernel_stamp,
                        });
                    }
                    wait_from = after;
                    if first || shortened {
                        wait = self.opts.idle;
                        shortened = false;
                        self.set_timeout(wait)?;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // A retry would restart the full timeout; wait only for
                    // what is left of it.
                    let waited = u64::try_from(clock::mono_ns() - wait_from).unwrap_or(0);
                    let Some(left) = wait.checked_sub(Duration::from_nanos(waited)) else {
                        break;
                    };
                    if left.is_zero() {
                        break;
                    }
                    // SO_RCVTIMEO rounds a sub-microsecond timeout down to 0,
                    // which would mean "forever".
                    self.set_timeout(left.max(Duration::from_micros(1)))?;
                    shortened = true;
                }
                Err(e) => return Err(RxError::new(format!("receive on {}", self.local), e)),
            }
        }

        let end = clock::measure_offset();
        let conversion = RealToMono { start, end };
        let arrivals = raw
            .iter()
            .map(|r| Arrival {
                seq: r.seq,
                len: r.len,
                rx_ns: if r.kernel_stamp {
                    conversion.to_mono(r.ns)
                } else {
                    r.ns
                },
            })
            .collect::<Vec<_>>();
        let summary = RxSummary {
            received: arrivals.len() as u64,
            no_timestamp,
            offset_drift_ns: end.offset_ns - start.offset_ns,
            bracket_ns: start.bracket_ns.max(end.bracket_ns),
        };
        Ok(Reception { arrivals, summary })
    }

    fn set_timeout(&self, timeout: Duration) -> Result<(), RxError> {
        self.socket
            .set_read_timeout(Some(timeout))
            .map_err(|e| RxError::new(format!("set SO_RCVTIMEO to {timeout:?}"), e))
    }
}

fn set_int_option(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size, which
    // is what SOL_SOCKET integer options read; an invalid fd only yields EBADF.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The buffers of `recvmmsg` calls, allocated once per `receive`: a data and
/// a control buffer per datagram, and the headers pointing at them.
struct Batch {
    /// [`BATCH_LEN`] slots of [`DATA_BUF_LEN`] bytes. Zeroed by the
    /// allocator, so only the pages datagrams are written to become resident.
    data: Vec<u8>,
    control: Vec<ControlBuf>,
    iov: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// How many headers the last successful call filled.
    filled: usize,
}

impl Batch {
    fn new() -> Batch {
        let no_iov = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: mmsghdr is plain old data for which all-zero is a valid
        // value (null pointers, zero lengths); zeroing also covers the private
        // padding fields some libcs have, which a struct literal cannot name.
        let no_header: libc::mmsghdr = unsafe { mem::zeroed() };
        Batch {
            data: vec![0; BATCH_LEN * DATA_BUF_LEN],
            control: vec![ControlBuf::default(); BATCH_LEN],
            iov: vec![no_iov; BATCH_LEN],
            headers: vec![no_header; BATCH_LEN],
            filled: 0,
        }
    }

    /// One `recvmmsg` of at most `max` (1..=[`BATCH_LEN`]) datagrams: waits
    /// for the first under the socket's SO_RCVTIMEO, then takes only what is
    /// already queued (MSG_WAITFORONE). Returns how many it took, at least 1.
    /// recvmmsg's own timeout argument stays null: the kernel checks it only
    /// after each datagram, so it could not bound the wait for the first.
    ///
    /// An error after the first datagram ends the batch early, and the kernel
    /// reports that error on the next call.
    fn receive(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let max = max.clamp(1, BATCH_LEN);
        self.filled = 0;
        // The kernel overwrites msg_controllen, msg_flags and msg_len, so every
        // header is set up afresh before each call.
        let slots = self
            .data
            .chunks_exact_mut(DATA_BUF_LEN)
            .zip(&mut self.control)
            .zip(&mut self.iov)
            .zip(&mut self.headers);
        for (((data, control), iov), header) in slots.take(max) {
            *iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            let msg = &mut header.msg_hdr;
            msg.msg_name = ptr::null_mut();
            msg.msg_namelen = 0;
            msg.msg_iov = iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = mem::size_of::<ControlBuf>() as _;
            msg.msg_flags = 0;
            header.msg_len = 0;
        }
        // The first `max` headers each point at one iovec describing their
        // own DATA_BUF_LEN slot of `data` and at their own control buffer.
        // SAFETY: with the true lengths, all owned by `self`, which is borrowed
        // exclusively: they stay live and unaliased for the call.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                max as libc::c_uint,
                libc::MSG_WAITFORONE as _,
                ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        self.filled = received as usize;
        Ok(self.filled)
    }

    /// Datagram `i` of the last call and, if the kernel attached one, its
    /// SCM_TIMESTAMPNS receive time in CLOCK_REALTIME ns.
    fn datagram(&self, i: usize) -> (&[u8], Option<i64>) {
        let header = &self.headers[..self.filled][i];
        // msg_len is what was copied, which the slot bounds anyway.
        let len = (header.msg_len as usize).min(DATA_BUF_LEN);
        let data = &self.data[i * DATA_BUF_LEN..][..len];
        (data, kernel_stamp(&header.msg_hdr))
    }
}

/// The SCM_TIMESTAMPNS time in `msg`, which a successful `recvmmsg` filled.
fn kernel_stamp(msg: &libc::msghdr) -> Option<i64> {
    let mut real_ns = None;
    // SAFETY: `msg` was filled by a successful recvmmsg, so its control
    // pointer and the kernel-set msg_controllen describe its slot's control
    // buffer, which is live and not mutably borrowed while `msg` is.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return either null or a pointer
        // to a whole, aligned cmsghdr inside the control buffer.
        let header = unsafe { &*cmsg };
        // cmsg_len is usize on glibc but u32 on musl.
        #[allow(clippy::unnecessary_cast)]
        let has_room = header.cmsg_len as usize >= STAMP_CMSG_LEN as usize;
        if header.cmsg_level == libc::SOL_SOCKET
            && header.cmsg_type == libc::SCM_TIMESTAMPNS
            && has_room
        {
            // SAFETY: cmsg_len says the data holds a whole timespec; it may be
            // unaligned for timespec, hence read_unaligned.
            let ts: libc::timespec = unsafe { ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            real_ns = Some(clock::timespec_ns(&ts));
        }
        // SAFETY: `cmsg` is a valid header within `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    real_ns
}
