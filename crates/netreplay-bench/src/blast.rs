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
/// best timing a sender on this machine can have. The origin is `lead_ns`
/// after the call; returns it.
pub fn pace(to: SocketAddr, times_ns: &[i64], size: usize, lead_ns: i64) -> io::Result<i64> {
    let socket = connected(to)?;
    let mut datagram = vec![0x5a_u8; size.max(4)];
    let at = datagram.len() - 4;
    let origin = clock::mono_ns() + lead_ns;
    for (i, &t) in times_ns.iter().enumerate() {
        datagram[at..].copy_from_slice(&(i as u32).to_be_bytes());
        let due = origin + t;
        while clock::mono_ns() < due {
            std::hint::spin_loop();
        }
        socket.send(&datagram)?;
    }
    Ok(origin)
}

/// How long one `sendmmsg` of `per_call` datagrams of `size` bytes takes
/// (ns), `calls` times, to a loopback socket of its own that is drained
/// between calls (untimed): the floor for a burst of records due at once.
pub fn sendmmsg_times(calls: usize, per_call: usize, size: usize) -> io::Result<Vec<u64>> {
    use std::os::fd::AsRawFd;
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_nonblocking(true)?;
    let socket = connected(rx.local_addr()?)?;
    let mut datagrams = vec![vec![0x5a_u8; size.max(4)]; per_call];
    let mut iovecs: Vec<libc::iovec> = datagrams
        .iter_mut()
        .map(|d| libc::iovec {
            iov_base: d.as_mut_ptr().cast(),
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no control).
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; per_call];
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    let mut drain = vec![0u8; size.max(4)];
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        // SAFETY: `headers` holds `per_call` initialised mmsghdrs whose
        // iovecs point into `datagrams`, all alive and unmoved during the call.
        let sent =
            unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), per_call as u32, 0) };
        times.push(start.elapsed().as_nanos() as u64);
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
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
        let times = [0, 1_000_000, 1_000_000, 3_000_000];
        let origin = pace(rx.local_addr().unwrap(), &times, 8, 1_000_000).unwrap();
        let mut buf = [0u8; 16];
        for i in 0..4u32 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 8);
            assert_eq!(buf[4..8], i.to_be_bytes());
        }
        assert!(clock::mono_ns() >= origin + 3_000_000);
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
