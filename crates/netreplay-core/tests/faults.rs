//! Fault tests of the core with more live mappings than the SIGBUS guard's
//! table held when they were written (1,024): 1,100 live `GuardedMap`s, 1,100
//! live readers from `mcl::open_file`, and one split set of 1,100 parts. In
//! each, the file read last is cut while it is read: that must give an error
//! (or, for a bare map, zeros and the `truncated` flag), never a SIGBUS.
//!
//! A SIGBUS kills the whole process, so each case runs in a child process
//! (this test binary again, running one `#[ignore]`d `child_*` test) and the
//! parent test asserts how the child ended. The three parent tests fail on a
//! guard with a fixed table of 1,024 (the child dies of SIGBUS) and pass once
//! the table grows. Run with `cargo test -p netreplay-core --test faults`.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use memmap2::Mmap;
use netreplay_core::engine::open_file;
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::RecordSource;
use netreplay_core::sys::GuardedMap;
use netreplay_core::Error;

/// More live mappings than the guard's table of 1,024.
const LIVE: usize = 1100;
const CHILD_ENV: &str = "NETREPLAY_FAULTS_CHILD";
const OK: &str = "FAULTS-CHILD-OK";
/// The directory the parent made for the child (and removes, crash or not).
const DIR_ENV: &str = "NETREPLAY_FAULTS_DIR";

fn page() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `k` as a msgpack uint 32.
fn uint32(k: u32) -> Vec<u8> {
    let mut bytes = vec![0xce];
    bytes.extend_from_slice(&k.to_be_bytes());
    bytes
}

/// Records `from..to`: time `k` ms, payload `k` as a msgpack uint 32.
fn records(from: u32, to: u32) -> String {
    let mut text = String::new();
    for k in from..to {
        text.push_str(&format!(
            "{:>12.5}    ''    ce{k:08x}\n",
            f64::from(k) / 1e3
        ));
    }
    text
}

fn with_header(body: &str) -> String {
    format!("#---\n# MCL_LOG\n#     -- created     1970-01-01 00:00:00\n#      >>> T\n{body}")
}

fn write(path: &Path, text: &str) {
    File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Read on after a cut: only intact records numbered from `next`, then an
/// `Error::Io` naming `path` and saying "shrank".
fn read_to_the_error(reader: &mut dyn RecordSource, mut next: u32, path: &Path) {
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                assert_eq!(r.payload, uint32(next), "an intact record, in order");
                next += 1;
            }
            Ok(None) => panic!("the stream ended without an error after the cut"),
            Err(Error::Io { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains("shrank"), "{message}");
                return;
            }
            Err(other) => panic!("expected Error::Io, got {other:?}"),
        }
    }
}

/// The child's working directory, made and removed by its parent.
fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var(DIR_ENV).expect("run by run_child"))
}

/// Run `child_<name>` in a child process; it must print OK and exit 0.
/// The child works in a directory of ours, removed even if it crashes.
fn run_child(name: &str) {
    let dir = TempDir::new(name);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("child_{name}"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, name)
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let how = match out.status.signal() {
        Some(libc::SIGBUS) => "killed by SIGBUS".to_string(),
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exit code {:?}", out.status.code()),
    };
    assert!(
        out.status.success() && stdout.contains(OK),
        "child {name}: {how}\nstdout: {stdout}\nstderr: {stderr}"
    );
}

/// The child tests do nothing unless run by `run_child`.
fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

// ------------------------------------------------------------- GuardedMap

#[test]
fn guarded_maps_beyond_1024_survive_a_cut() {
    run_child("maps");
}

#[test]
#[ignore = "helper: run in a child process"]
fn child_maps() {
    if !is_child("maps") {
        return;
    }
    let dir = child_dir();
    let path = dir.join("f.bin");
    write(&path, &"x".repeat(4 * page()));
    let file = File::open(&path).unwrap();
    let maps: Vec<GuardedMap> = (0..LIVE)
        // SAFETY: a private test file; cutting it is the point, guarded.
        .map(|_| GuardedMap::new(unsafe { Mmap::map(&file) }.unwrap()))
        .collect();
    let guarded = maps.iter().filter(|m| m.is_guarded()).count();
    eprintln!(
        "{guarded} of {LIVE} live maps are guarded; cutting the file and reading the last map"
    );
    truncate(&path, 0);
    let last = maps.last().unwrap();
    let sum: u64 = last.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(sum, 0, "pages past the end read as zeros");
    assert!(last.truncated());
    assert_eq!(guarded, LIVE, "every live map is guarded");
    println!("{OK}");
}

// ------------------------------------------------------- 1,100 readers

#[test]
fn readers_beyond_1024_report_a_cut_file() {
    run_child("readers");
}

#[test]
#[ignore = "helper: run in a child process"]
fn child_readers() {
    if !is_child("readers") {
        return;
    }
    let dir = child_dir();
    // ~4 pages each.
    let text = with_header(&records(0, 600));
    let paths: Vec<PathBuf> = (0..LIVE)
        .map(|i| dir.join(format!("f{i:04}.log")))
        .collect();
    for p in &paths {
        write(p, &text);
    }
    let mut readers: Vec<_> = paths
        .iter()
        .map(|p| open_file(p, &ReadOptions::default()).unwrap())
        .collect();
    let last = readers.last_mut().unwrap();
    for k in 0..5u32 {
        assert_eq!(last.next_record().unwrap().unwrap().payload, uint32(k));
    }
    eprintln!("{LIVE} live readers; cutting the last one's file to 0 and reading on");
    truncate(paths.last().unwrap(), 0);
    read_to_the_error(last, 5, paths.last().unwrap());
    println!("{OK}");
}

// ------------------------------------------------ split set of 1,100 parts

#[test]
fn split_set_of_1100_parts_reports_its_last_part_cut() {
    run_child("split");
}

#[test]
#[ignore = "helper: run in a child process"]
fn child_split() {
    if !is_child("split") {
        return;
    }
    let dir = child_dir();
    const SMALL: u32 = 10;
    let first_of_last = (LIVE as u32 - 1) * SMALL;
    let mut last = PathBuf::new();
    for i in 0..LIVE as u32 {
        let path = dir.join(format!("S_{i:03}.log"));
        if i + 1 < LIVE as u32 {
            let body = records(i * SMALL, (i + 1) * SMALL);
            write(&path, &if i == 0 { with_header(&body) } else { body });
        } else {
            // The last part: ~60 pages.
            write(&path, &records(first_of_last, first_of_last + 8000));
            last = path;
        }
    }
    let mut reader = open_file(&dir.join("S"), &ReadOptions::default()).unwrap();
    let read = first_of_last + 2000;
    for k in 0..read {
        assert_eq!(reader.next_record().unwrap().unwrap().payload, uint32(k));
    }
    eprintln!("split set of {LIVE} parts; cutting the last part behind the reader and reading on");
    truncate(&last, 700);
    read_to_the_error(&mut reader, read, &last);
    println!("{OK}");
}
