//! `netreplay-bench`: see [`netreplay_bench::args::USAGE`].

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use netreplay_bench::args::{parse_args, Command, USAGE};

/// Exit status of every failure, so a harness can tell them from signals.
const FAILURE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let no_args = args.is_empty();
    match parse_args(args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Rx(rx)) => match run_rx(rx) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Ok(Command::Wake { seconds }) => run_wake(seconds),
        Ok(Command::Blast { to, count, size }) => {
            match netreplay_bench::blast::blast(to, count, size) {
                Ok(seconds) => match emit(&format!(
                    "{{\"sent\":{count},\"seconds\":{seconds:.6},\"perSec\":{:.0}}}",
                    f64::from(count) / seconds
                )) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => fail(&message),
                },
                Err(e) => fail(&format!("blast to {to}: {e}")),
            }
        }
        Ok(Command::Pace {
            to,
            schedule,
            size,
            batch,
        }) => match run_pace(to, &schedule, size, batch) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Ok(Command::Offset) => {
            let o = netreplay_bench::clock::measure_offset();
            match emit(&format!(
                "{{\"monoNs\":{},\"offsetNs\":{},\"bracketNs\":{}}}",
                o.mono_ns, o.offset_ns, o.bracket_ns
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => fail(&message),
            }
        }
        Ok(Command::Sum { file, runs }) => match run_sum(&file, runs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Err(e) if no_args => {
            eprint!("{USAGE}");
            fail(&e.to_string())
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Half the time on sleeps (split over three lengths), half spinning.
fn run_wake(seconds: u32) -> ExitCode {
    use netreplay_bench::wake::{sleep_overshoots, spin_stalls, summary_json};
    use std::time::Duration;

    let budget = Duration::from_secs(u64::from(seconds)) / 2;
    let mut fields = Vec::new();
    for (name, sleep) in [
        ("sleep100us", Duration::from_micros(100)),
        ("sleep750us", Duration::from_micros(750)),
        ("sleep9750us", Duration::from_micros(9_750)),
    ] {
        let count = ((budget / 3).as_nanos() / (sleep.as_nanos() + 60_000)).max(1) as usize;
        let summary = summary_json(sleep_overshoots(sleep, count));
        fields.push(format!("\"{name}\":{summary}"));
    }
    let stalls = spin_stalls(budget, Duration::from_micros(50));
    fields.push(format!("\"spinStallsOver50us\":{}", summary_json(stalls)));
    // The floor of a burst: 10 records due at once, as the bursty schedule.
    match netreplay_bench::blast::sendmmsg_times(2_000, 10, 120) {
        Ok(times) => fields.push(format!("\"sendmmsg10x120B\":{}", summary_json(times))),
        Err(e) => eprintln!("netreplay-bench wake: sendmmsg: {e}"),
    }
    match emit(&format!("{{{}}}", fields.join(","))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// CPU time (user + system) this process has used, µs.
fn process_cpu_us() -> u64 {
    // SAFETY: rusage is plain data; getrusage fills it and reads nothing.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// The schedule (f64 little-endian ns, whole ns) sent at its times.
fn run_pace(
    to: std::net::SocketAddr,
    schedule: &std::path::Path,
    size: usize,
    batch: bool,
) -> Result<(), String> {
    let name = schedule.display();
    let bytes =
        std::fs::read(schedule).map_err(|e| format!("cannot read --schedule {name:?}: {e}"))?;
    if bytes.len() % 8 != 0 {
        return Err(format!(
            "--schedule {name:?}: {} bytes is not a whole number of f64",
            bytes.len()
        ));
    }
    let times: Vec<i64> = bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")).round() as i64)
        .collect();
    let start = std::time::Instant::now();
    let origin = netreplay_bench::blast::pace(to, &times, size, 5_000_000, batch)
        .map_err(|e| format!("pace to {to}: {e}"))?;
    let wall_ns = start.elapsed().as_nanos();
    emit(&format!(
        "{{\"originNs\":{origin},\"sent\":{},\"cpuUs\":{},\"wallNs\":{wall_ns}}}",
        times.len(),
        process_cpu_us()
    ))
}

/// `runs` mapped passes over `file`, then `runs` read passes.
#[cfg(unix)]
fn run_sum(file: &std::path::Path, runs: u32) -> Result<(), String> {
    use netreplay_bench::sum::{mapped_pass, read_pass};
    let name = file.display();
    let mut bytes = 0;
    let mut passes = |pass: fn(&std::path::Path) -> std::io::Result<(u64, u64, u64)>| {
        (0..runs)
            .map(|_| {
                let (ns, n, sum) = pass(file).map_err(|e| format!("cannot read {name:?}: {e}"))?;
                bytes = n;
                std::hint::black_box(sum);
                Ok(ns.to_string())
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let mapped = passes(mapped_pass)?;
    let read = passes(read_pass)?;
    emit(&format!(
        "{{\"bytes\":{bytes},\"mappedNs\":[{}],\"readNs\":[{}]}}",
        mapped.join(","),
        read.join(",")
    ))
}

#[cfg(not(unix))]
fn run_sum(_file: &std::path::Path, _runs: u32) -> Result<(), String> {
    Err("sum needs a unix system (mmap)".into())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("netreplay-bench: {message}");
    ExitCode::from(FAILURE)
}

/// Write one line to stdout and flush it, since the harness reads the lines
/// while the process still runs.
fn emit(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

#[cfg(target_os = "linux")]
fn run_rx(rx: netreplay_bench::args::RxArgs) -> Result<(), String> {
    use netreplay_bench::{encode_records, Receiver};
    use std::fs::File;

    let requested_rcvbuf = rx.opts.rcvbuf;
    let mut receiver = Receiver::bind(rx.opts).map_err(|e| e.to_string())?;
    let out_name = rx.out.display().to_string();
    // Open the output before receiving, so a bad path fails at once rather
    // than after the whole run.
    let mut out =
        File::create(&rx.out).map_err(|e| format!("cannot create --out {out_name:?}: {e}"))?;
    // Linux reports twice the requested size; less means rmem_max capped it
    // and a fast burst may be dropped.
    if let Ok(actual) = receiver.rcvbuf_bytes() {
        if actual / 2 < requested_rcvbuf {
            eprintln!(
                "netreplay-bench: warning: receive buffer is {} bytes, not the requested \
                 {requested_rcvbuf} (SO_RCVBUFFORCE needs CAP_NET_ADMIN; see net.core.rmem_max)",
                actual / 2
            );
        }
    }
    emit(&format!("{{\"port\":{}}}", receiver.port()))?;

    let reception = receiver.receive().map_err(|e| e.to_string())?;
    out.write_all(&encode_records(&reception.arrivals))
        .map_err(|e| format!("cannot write --out {out_name:?}: {e}"))?;
    emit(&reception.summary.to_json())
}

#[cfg(not(target_os = "linux"))]
fn run_rx(_rx: netreplay_bench::args::RxArgs) -> Result<(), String> {
    Err("rx needs Linux (SO_TIMESTAMPNS, SO_RCVBUFFORCE)".into())
}
