//! The ceiling for UDP sends on this machine: one thread doing nothing but
//! send datagrams of one size to one address, as fast as the kernel takes
//! them. A replayer's UDP rate is measured against this.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

/// Send `count` datagrams of `size` bytes (≥ 4; each ends in its index as a
/// big-endian u32, as the replayed ones do) to `to`; returns the seconds it
/// took. Each datagram is one `send` call: the kernel's cost per datagram is
/// what this measures.
pub fn blast(to: SocketAddr, count: u32, size: usize) -> io::Result<f64> {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid address")
    } else {
        "[::]:0".parse().expect("valid address")
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(to)?;
    let mut datagram = vec![0x5a_u8; size.max(4)];
    let at = datagram.len() - 4;
    let start = Instant::now();
    for i in 0..count {
        datagram[at..].copy_from_slice(&i.to_be_bytes());
        socket.send(&datagram)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

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
