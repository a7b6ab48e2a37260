//! The ceilings for UDP sends on this machine: one thread doing nothing but
//! send datagrams of one size to one address, as fast as the kernel takes
//! them (a replayer's UDP rate is measured against this), or each at its
//! time in a schedule, spinning in between (a replayer's timing is).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use crate::clock;

fn connected(to: SocketAddr) -> io::Result<UdpSocket> {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid address")
    } else {
        "[::]:0".parse().expect("valid address")
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(to)?;
    Ok(socket)
}

/// Send `count` datagrams of `size` bytes (≥ 4; each ends in its index as a
/// big-endian u32, as the replayed ones do) to `to`; returns the seconds it
/// took. Each datagram is one `send` call: the kernel's cost per datagram is
/// what this measures.
pub fn blast(to: SocketAddr, count: u32, size: usize) -> io::Result<f64> {
    let socket = connected(to)?;
    let mut datagram = vec![0x5a_u8; size.max(4)];
    let at = datagram.len() - 4;
    let start = Instant::now();
    for i in 0..count {
        datagram[at..].copy_from_slice(&i.to_be_bytes());
        socket.send(&datagram)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Send datagram i (`size` bytes, ≥ 4, ending in i as a big-endian u32) at
/// `origin + times_ns[i]` on CLOCK_MONOTONIC, spinning on the clock in
/// between — no sleep, no queue, nothing but the wait and one `send`: the
/// best timing a sender on this machine can have. With `batch`, datagrams
/// of equal times go in one `sendmmsg` (the floor for a burst). The origin
/// is `lead_ns` after the call; returns it.
pub fn pace(
    to: SocketAddr,
    times_ns: &[i64],
    size: usize,
    lead_ns: i64,
    batch: bool,
) -> io::Result<i64> {
    let socket = connected(to)?;
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let origin = clock::mono_ns() + lead_ns;
    let mut i = 0;
    while i < times_ns.len() {
        let t = times_ns[i];
        let group = if batch {
            times_ns[i..].iter().take_while(|&&u| u == t).count()
        } else {
            1
        };
        datagrams.resize_with(group.max(datagrams.len()), || vec![0x5a_u8; size.max(4)]);
        for (k, d) in datagrams[..group].iter_mut().enumerate() {
            let at = d.len() - 4;
            d[at..].copy_from_slice(&((i + k) as u32).to_be_bytes());
        }
        // Everything the send needs is made before the wait.
        let mut headers = (group > 1).then(|| mmsg_headers(&mut datagrams[..group]));
        let due = origin + t;
        while clock::mono_ns() < due {
            std::hint::spin_loop();
        }
        match headers.as_mut() {
            None => socket.send(&datagrams[0]).map(drop)?,
            Some(headers) => send_all(&socket, headers)?,
        }
        i += group;
    }
    Ok(origin)
}

/// The datagrams of `headers` with `sendmmsg`, again for the rest until all
/// are sent.
fn send_all(socket: &UdpSocket, headers: &mut Headers) -> io::Result<()> {
    let mut sent = 0;
    while sent < headers.len() {
        sent += sendmmsg(socket, &mut headers[sent..])?;
    }
    Ok(())
}

/// One `sendmmsg` header per datagram, with the iovecs they point to (kept
/// here so that they live as long as the headers).
struct Headers {
    _iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl std::ops::Deref for Headers {
    type Target = [libc::mmsghdr];
    fn deref(&self) -> &[libc::mmsghdr] {
        &self.headers
    }
}

impl std::ops::DerefMut for Headers {
    fn deref_mut(&mut self) -> &mut [libc::mmsghdr] {
        &mut self.headers
    }
}

fn mmsg_headers(datagrams: &mut [Vec<u8>]) -> Headers {
    let mut iovecs: Vec<libc::iovec> = datagrams
        .iter_mut()
        .map(|d| libc::iovec {
            iov_base: d.as_mut_ptr().cast(),
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no control).
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; datagrams.len()];
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    Headers {
        _iovecs: iovecs,
        headers,
    }
}

/// One `sendmmsg` call: how many of `headers` it sent.
fn sendmmsg(socket: &UdpSocket, headers: &mut [libc::mmsghdr]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `headers` are initialised mmsghdrs whose iovecs point into
    // live datagram buffers (see `mmsg_headers`), unmoved during the call.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as u32,
            0,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// How long one `sendmmsg` of `per_call` datagrams of `size` bytes takes
/// (ns), `calls` times, to a loopback socket of its own that is drained
/// between calls (untimed), so that no receiver is woken: the kernel's cost
/// for a burst of records due at once, without the wake-up of a sleeping
/// receiver (which `pace` with `batch` includes).
pub fn sendmmsg_times(calls: usize, per_call: usize, size: usize) -> io::Result<Vec<u64>> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_nonblocking(true)?;
    let socket = connected(rx.local_addr()?)?;
    let mut datagrams = vec![vec![0x5a_u8; size.max(4)]; per_call];
    let mut headers = mmsg_headers(&mut datagrams);
    let mut drain = vec![0u8; size.max(4)];
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        let sent = sendmmsg(&socket, &mut headers);
        times.push(start.elapsed().as_nanos() as u64);
        sent?;
        while rx.recv(&mut drain).is_ok() {}
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_datagrams_arrive_in_order_not_before_their_time() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let times = [0, 1_000_000, 1_000_000, 1_000_000, 3_000_000];
        for batch in [false, true] {
            let origin = pace(rx.local_addr().unwrap(), &times, 8, 1_000_000, batch).unwrap();
            let mut buf = [0u8; 16];
            for i in 0..5u32 {
                assert_eq!(rx.recv(&mut buf).unwrap(), 8, "batch {batch}");
                assert_eq!(buf[4..8], i.to_be_bytes(), "batch {batch}");
            }
            assert!(clock::mono_ns() >= origin + 3_000_000);
        }
    }

    #[test]
    fn sendmmsg_is_timed_once_per_call() {
        let times = sendmmsg_times(20, 10, 120).unwrap();
        assert_eq!(times.len(), 20);
        assert!(times.iter().all(|&t| t > 0));
    }

    #[test]
    fn every_datagram_arrives_with_its_index() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let seconds = blast(rx.local_addr().unwrap(), 50, 40).unwrap();
        assert!(seconds > 0.0);
        let mut buf = [0u8; 64];
        for i in 0..50u32 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, 40);
            assert_eq!(buf[36..40], i.to_be_bytes());
        }
    }
}
