//! Socket calls that `socket2` does not offer: an option, and `sendmmsg`.

use std::io;
use std::ops::Range;

use socket2::{SockAddr, Socket};

/// Select the outgoing interface of IPv4 multicast by index
/// (`IP_MULTICAST_IF` with a `struct ip_mreqn`).
#[cfg(target_os = "linux")]
pub fn set_multicast_if_v4_index(socket: &Socket, index: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index as libc::c_int,
    };
    // SAFETY: the fd is a live socket owned by `socket`; `mreqn` is a valid
    // ip_mreqn and its exact size is passed, as IP_MULTICAST_IF accepts on Linux.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_multicast_if_v4_index(_socket: &Socket, _index: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "selecting the IPv4 multicast interface by index needs Linux; give its IPv4 address",
    ))
}

/// Send datagrams `range` of `bytes` in order with one `sendmmsg`, up to `N`
/// of them: datagram `i` is `bytes[ends[i - 1]..ends[i]]` (the first starts
/// at 0). To `target`, or to the connected peer if `None`, with `flags`
/// (`MSG_*`). Returns how many were sent, or the error of the first one if
/// none was (the kernel drops the error of a later one and returns a short
/// count).
#[cfg(target_os = "linux")]
pub fn send_many<const N: usize>(
    socket: &Socket,
    target: Option<&SockAddr>,
    bytes: &[u8],
    ends: &[usize],
    range: Range<usize>,
    flags: libc::c_int,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = range.len().min(N);
    // SAFETY: iovec is plain data; all zeros is a valid (empty) value.
    let mut iovecs: [libc::iovec; N] = unsafe { std::mem::zeroed() };
    for (iov, i) in iovecs.iter_mut().zip(range.start..range.start + n) {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        let datagram = &bytes[start..ends[i]];
        // The kernel only reads through iov_base on send.
        iov.iov_base = datagram.as_ptr().cast_mut().cast();
        iov.iov_len = datagram.len();
    }
    // SAFETY: mmsghdr is plain data; all zeros is a valid value (null
    // pointers, no control data, no flags).
    let mut headers: [libc::mmsghdr; N] = unsafe { std::mem::zeroed() };
    let iov_base = iovecs.as_mut_ptr();
    for (k, header) in headers.iter_mut().take(n).enumerate() {
        let hdr = &mut header.msg_hdr;
        hdr.msg_iov = iov_base.wrapping_add(k);
        hdr.msg_iovlen = 1;
        if let Some(target) = target {
            hdr.msg_name = target.as_ptr().cast_mut().cast();
            hdr.msg_namelen = target.len();
        }
    }
    // `headers[..n]` are initialized; each points to one iovec in `iovecs`
    // over a live slice of `bytes`, and to `target` if given.
    // SAFETY: all of these outlive the call, the kernel writes only each
    // header's `msg_len`, and the fd is the open socket `socket` owns.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            n as libc::c_uint,
            flags,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}
