//! The machine's ceiling for reading a file's bytes: every 8-byte word of
//! the file summed, once through a fresh read-only mapping (as the MCAP and
//! capture readers map their files) and once through `read(2)` into a reused
//! 1 MiB buffer. A reader that touches every byte cannot beat these.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

/// The wrapping sum of `bytes` as little-endian u64 words (a short tail
/// padded with zeros).
pub fn sum_words(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    // Four lanes, so the adds are not one dependency chain.
    let mut lanes = [0u64; 4];
    for (i, w) in (&mut words).enumerate() {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        lanes[i & 3] = lanes[i & 3].wrapping_add(w);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    lanes
        .iter()
        .fold(u64::from_le_bytes(tail), |a, &b| a.wrapping_add(b))
}

/// One pass over `path` through a new mapping (mapped, summed, unmapped):
/// (nanoseconds, bytes, sum).
#[cfg(unix)]
pub fn mapped_pass(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    let file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("file too large to map"))?;
    if len == 0 {
        return Ok((start.elapsed().as_nanos() as u64, 0, 0));
    }
    // SAFETY: a read-only private mapping of a file this process opened, of
    // its length; the pointer is checked against MAP_FAILED before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `ptr` maps `len` readable bytes until the munmap below, and
    // nothing writes to them (the bench does not change its files meanwhile).
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    let sum = sum_words(bytes);
    // SAFETY: `ptr`/`len` are the mapping made above; `bytes` is not used after.
    unsafe { libc::munmap(ptr, len) };
    Ok((start.elapsed().as_nanos() as u64, len as u64, sum))
}

/// One pass over `path` with `read(2)` into a 1 MiB buffer: (ns, bytes, sum).
pub fn read_pass(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    let start = Instant::now();
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut total, mut sum) = (0u64, 0u64);
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        // Reads are whole words except at the end of the file.
        sum = sum.wrapping_add(sum_words(&buffer[..n]));
        total += n as u64;
    }
    Ok((start.elapsed().as_nanos() as u64, total, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_words_and_the_padded_tail() {
        let mut bytes = Vec::new();
        for w in 1u64..=9 {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.extend_from_slice(&[1, 0, 0]);
        assert_eq!(sum_words(&bytes), 45 + 1);
        assert_eq!(sum_words(&[]), 0);
    }

    #[test]
    fn both_passes_see_the_same_bytes() {
        let path = std::env::temp_dir().join(format!("netreplay-bench-sum-{}", std::process::id()));
        let bytes: Vec<u8> = (0..100_003u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let (_, n, s) = read_pass(&path).unwrap();
        assert_eq!((n, s), (bytes.len() as u64, sum_words(&bytes)));
        #[cfg(unix)]
        {
            let (_, n, s) = mapped_pass(&path).unwrap();
            assert_eq!((n, s), (bytes.len() as u64, sum_words(&bytes)));
        }
        std::fs::remove_file(&path).unwrap();
    }
}
