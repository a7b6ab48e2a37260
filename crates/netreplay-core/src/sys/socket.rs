//! Socket options that `socket2` does not offer.

/// Select the outgoing interface of IPv4 multicast by index
/// (`IP_MULTICAST_IF` with a `struct ip_mreqn`).
#[cfg(target_os = "linux")]
pub fn set_multicast_if_v4_index(socket: &socket2::Socket, index: u32) -> std::io::Result<()> {
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
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_multicast_if_v4_index(_socket: &socket2::Socket, _index: u32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "selecting the IPv4 multicast interface by index needs Linux; give its IPv4 address",
    ))
}
