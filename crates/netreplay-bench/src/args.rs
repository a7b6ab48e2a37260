//! Command-line parsing for the `netreplay-bench` binary.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::RxOptions;

pub const USAGE: &str = "\
usage: netreplay-bench rx [--bind ADDR] [--port PORT] --out FILE [--expect N]
                          [--idle-ms MS] [--first-timeout-ms MS] [--rcvbuf BYTES]
       netreplay-bench wake [--seconds S]
       netreplay-bench blast --to ADDR:PORT [--count N] [--size BYTES]
       netreplay-bench pace --to ADDR:PORT --schedule FILE [--size BYTES] [--batch]
       netreplay-bench offset
       netreplay-bench sum --file FILE [--runs N]

wake: measure this machine for S seconds (default 10): how late sleeps of
100 µs, 750 µs and 9.75 ms wake up, and how long a spinning thread is kept
off its core (gaps > 50 µs); one JSON line of µs summaries.

blast: send N datagrams (default 1000000) of BYTES bytes (default 120),
one send() each, as fast as the kernel takes them: the machine's ceiling
for UDP sends. stdout: {\"sent\":N,\"seconds\":S,\"perSec\":R}

pace: send datagram i (BYTES bytes, default 16, ending in i) at time
origin + t_i, t_i from FILE (f64 little-endian ns, as the bench writes
schedules), spinning on CLOCK_MONOTONIC in between: the best timing a bare
sender has here. --batch: datagrams of equal times go in one sendmmsg.
The origin is 5 ms after the start.
stdout: {\"originNs\":O,\"sent\":N} (O on CLOCK_MONOTONIC)

offset: measure CLOCK_REALTIME − CLOCK_MONOTONIC once (the narrowest of 20
mono–real–mono reads, as rx converts its timestamps). stdout:
{\"monoNs\":M,\"offsetNs\":O,\"bracketNs\":B}: realtime = monotonic + O
at monotonic time M, within B ns.

sum: the ceiling for reading FILE's bytes, N times (default 3): every
8-byte word summed through a fresh read-only mapping, then through read(2)
into a 1 MiB buffer. stdout: {\"bytes\":B,\"mappedNs\":[..],\"readNs\":[..]}

rx: receive UDP datagrams, recording each one's kernel receive time
(SO_TIMESTAMPNS) as CLOCK_MONOTONIC nanoseconds.
  --bind ADDR            IPv4 or IPv6 address to bind (default 127.0.0.1)
  --port PORT            UDP port; 0 picks a free one (default 0)
  --out FILE             output file: 16-byte little-endian records
                         (u32 seq, u32 len, i64 rx_mono_ns) in arrival order;
                         seq is the datagram's last 4 bytes, big-endian
                         (4294967295 if shorter than 4 bytes)
  --expect N             stop after N datagrams; 0 = no limit (default 0)
  --idle-ms MS           stop when none arrived for MS ms after the first
                         (default 2000)
  --first-timeout-ms MS  stop when none arrived at all within MS ms
                         (default 120000)
  --rcvbuf BYTES         requested receive buffer, SO_RCVBUFFORCE else
                         SO_RCVBUF (default 67108864)

stdout: {\"port\":P} once bound, then
        {\"received\":N,\"noTimestamp\":K,\"offsetDriftNs\":D,\"bracketNs\":B}
exit status: 0 on success, 2 on any error (message on stderr)
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Rx(RxArgs),
    /// Measure sleep overshoot and spin stalls for this many seconds.
    Wake {
        seconds: u32,
    },
    /// Send datagrams as fast as possible: the kernel's ceiling.
    Blast {
        to: SocketAddr,
        count: u32,
        size: usize,
    },
    /// Send a schedule's datagrams at their times, spinning between them.
    Pace {
        to: SocketAddr,
        schedule: PathBuf,
        size: usize,
        /// Equal times in one `sendmmsg`.
        batch: bool,
    },
    /// Measure CLOCK_REALTIME − CLOCK_MONOTONIC once.
    Offset,
    /// Time summing a file's bytes, mapped and read, `runs` times each.
    Sum {
        file: PathBuf,
        runs: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxArgs {
    pub opts: RxOptions,
    pub out: PathBuf,
}

/// A one-line description of what is wrong with the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn err<T>(message: String) -> Result<T, ArgError> {
    Err(ArgError(message))
}

/// Parse the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let Some(subcommand) = args.next() else {
        return err("missing subcommand (try --help)".into());
    };
    match subcommand.to_str() {
        Some("--help" | "-h" | "help") => Ok(Command::Help),
        Some("rx") => parse_rx(args),
        Some("wake") => parse_wake(args),
        Some("blast") => parse_blast(args),
        Some("pace") => parse_pace(args),
        Some("offset") => parse_offset(args),
        Some("sum") => parse_sum(args),
        _ => err(format!(
            "unknown subcommand {:?} (try --help)",
            subcommand.to_string_lossy()
        )),
    }
}

fn parse_wake(mut args: impl Iterator<Item = OsString>) -> Result<Command, ArgError> {
    let mut seconds = 10;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--help" | "-h") => return Ok(Command::Help),
            Some("--seconds") => match args.next() {
                Some(value) => seconds = parse_num("--seconds", &value, "a number of seconds")?,
                None => return err("--seconds needs a value".into()),
            },
            _ => {
                return err(format!(
                    "unknown option {:?} for wake (try --help)",
                    arg.to_string_lossy()
                ))
            }
        }
    }
    if seconds == 0 {
        return err("--seconds: must be at least 1".into());
    }
    Ok(Command::Wake { seconds })
}

fn parse_pace(mut args: impl Iterator<Item = OsString>) -> Result<Command, ArgError> {
    let (mut to, mut schedule, mut size, mut batch) = (None, None, 16, false);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        if matches!(flag.as_str(), "--help" | "-h") {
            return Ok(Command::Help);
        }
        if flag == "--batch" {
            batch = true;
            continue;
        }
        let Some(value) = args.next() else {
            return err(format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--to" => to = Some(parse_addr(&flag, &value)?),
            "--schedule" => schedule = Some(PathBuf::from(value)),
            "--size" => size = parse_num(&flag, &value, "a size in bytes")?,
            _ => return err(format!("unknown option {flag:?} for pace (try --help)")),
        }
    }
    check_datagram_size(size)?;
    let Some(to) = to else {
        return err("pace needs --to ADDR:PORT".into());
    };
    let Some(schedule) = schedule else {
        return err("pace needs --schedule FILE".into());
    };
    Ok(Command::Pace {
        to,
        schedule,
        size,
        batch,
    })
}

fn parse_offset(mut args: impl Iterator<Item = OsString>) -> Result<Command, ArgError> {
    match args.next() {
        None => Ok(Command::Offset),
        Some(arg) if matches!(arg.to_str(), Some("--help" | "-h")) => Ok(Command::Help),
        Some(arg) => err(format!(
            "unknown option {:?} for offset (try --help)",
            arg.to_string_lossy()
        )),
    }
}

fn parse_sum(mut args: impl Iterator<Item = OsString>) -> Result<Command, ArgError> {
    let (mut file, mut runs) = (None, 3);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        if matches!(flag.as_str(), "--help" | "-h") {
            return Ok(Command::Help);
        }
        let Some(value) = args.next() else {
            return err(format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--file" => file = Some(PathBuf::from(value)),
            "--runs" => runs = parse_num(&flag, &value, "a count")?,
            _ => return err(format!("unknown option {flag:?} for sum (try --help)")),
        }
    }
    if runs == 0 {
        return err("--runs: must be at least 1".into());
    }
    let Some(file) = file else {
        return err("sum needs --file FILE".into());
    };
    Ok(Command::Sum { file, runs })
}

fn parse_blast(mut args: impl Iterator<Item = OsString>) -> Result<Command, ArgError> {
    let (mut to, mut count, mut size) = (None, 1_000_000, 120);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        if matches!(flag.as_str(), "--help" | "-h") {
            return Ok(Command::Help);
        }
        let Some(value) = args.next() else {
            return err(format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--to" => to = Some(parse_addr(&flag, &value)?),
            "--count" => count = parse_num(&flag, &value, "a count")?,
            "--size" => size = parse_num(&flag, &value, "a size in bytes")?,
            _ => return err(format!("unknown option {flag:?} for blast (try --help)")),
        }
    }
    check_datagram_size(size)?;
    let Some(to) = to else {
        return err("blast needs --to ADDR:PORT".into());
    };
    Ok(Command::Blast { to, count, size })
}

fn parse_rx(mut args: impl Iterator<Item = OsString>) -> Result<Command, ArgError> {
    let defaults = RxOptions::default();
    let mut ip = defaults.addr.ip();
    let mut port = defaults.addr.port();
    let mut out: Option<PathBuf> = None;
    let mut opts = defaults;

    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            return err(format!("unexpected argument {:?}", arg.to_string_lossy()));
        };
        if matches!(text, "--help" | "-h") {
            return Ok(Command::Help);
        }
        let (flag, inline_value) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(OsString::from(value))),
            _ => (text, None),
        };
        if !flag.starts_with("--") {
            return err(format!("unexpected argument {text:?}"));
        }
        let flag = flag.to_owned();
        let mut value = || match inline_value.clone().or_else(|| args.next()) {
            Some(value) => Ok(value),
            None => err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--bind" => ip = parse_ip(&value()?)?,
            "--port" => port = parse_num(&flag, &value()?, "a port number (0-65535)")?,
            "--out" => {
                let path = value()?;
                if path.is_empty() {
                    return err("--out: empty path".into());
                }
                out = Some(PathBuf::from(path));
            }
            "--expect" => opts.expect = parse_num(&flag, &value()?, "a count (0 or more)")?,
            "--idle-ms" => opts.idle = parse_ms(&flag, &value()?)?,
            "--first-timeout-ms" => opts.first_timeout = parse_ms(&flag, &value()?)?,
            "--rcvbuf" => opts.rcvbuf = parse_rcvbuf(&value()?)?,
            _ => return err(format!("unknown option {flag:?} for rx (try --help)")),
        }
    }

    let Some(out) = out else {
        return err("rx needs --out FILE".into());
    };
    opts.addr = SocketAddr::new(ip, port);
    Ok(Command::Rx(RxArgs { opts, out }))
}

/// `--to`'s value: an address:port.
fn parse_addr(flag: &str, value: &OsString) -> Result<SocketAddr, ArgError> {
    let text = utf8(flag, value)?;
    text.parse::<SocketAddr>()
        .map_err(|_| ArgError(format!("{flag}: {text:?} is not an address:port")))
}

/// `--size`: a datagram of 4 bytes (the record index) up to UDP's largest.
fn check_datagram_size(size: usize) -> Result<(), ArgError> {
    if !(4..=65_507).contains(&size) {
        return err(format!("--size: {size} is not between 4 and 65507"));
    }
    Ok(())
}

fn utf8<'a>(flag: &str, value: &'a OsString) -> Result<&'a str, ArgError> {
    match value.to_str() {
        Some(text) => Ok(text),
        None => err(format!(
            "{flag}: {:?} is not valid UTF-8",
            value.to_string_lossy()
        )),
    }
}

fn parse_num<T: FromStr>(flag: &str, value: &OsString, what: &str) -> Result<T, ArgError> {
    let text = utf8(flag, value)?;
    match text.parse() {
        Ok(number) => Ok(number),
        Err(_) => err(format!("{flag}: {text:?} is not {what}")),
    }
}

fn parse_ip(value: &OsString) -> Result<IpAddr, ArgError> {
    let text = utf8("--bind", value)?;
    // Accept the bracketed IPv6 form people copy from URLs.
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    match bare.parse() {
        Ok(ip) => Ok(ip),
        Err(_) => err(format!("--bind: {text:?} is not an IPv4 or IPv6 address")),
    }
}

fn parse_ms(flag: &str, value: &OsString) -> Result<Duration, ArgError> {
    let ms: u64 = parse_num(flag, value, "a number of milliseconds")?;
    // The receive timeout treats 0 as "wait forever".
    if ms == 0 {
        return err(format!("{flag}: \"0\" is not allowed (must be at least 1)"));
    }
    Ok(Duration::from_millis(ms))
}

fn parse_rcvbuf(value: &OsString) -> Result<usize, ArgError> {
    let what = "a byte count (1-2147483647)";
    let bytes: usize = parse_num("--rcvbuf", value, what)?;
    // setsockopt takes a C int.
    if bytes == 0 || bytes > i32::MAX as usize {
        return err(format!("--rcvbuf: \"{bytes}\" is not {what}"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_RCVBUF;
    use std::net::Ipv6Addr;

    fn parse(args: &[&str]) -> Result<Command, ArgError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn parse_rx(args: &[&str]) -> RxArgs {
        match parse(args) {
            Ok(Command::Rx(rx)) => rx,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(args) {
            Err(ArgError(message)) => message,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn sum_needs_a_file() {
        assert_eq!(
            parse(&["sum", "--file", "/tmp/x", "--runs", "5"]),
            Ok(Command::Sum {
                file: PathBuf::from("/tmp/x"),
                runs: 5
            })
        );
        assert_eq!(
            parse(&["sum", "--file", "/tmp/x"]),
            Ok(Command::Sum {
                file: PathBuf::from("/tmp/x"),
                runs: 3
            })
        );
        assert!(error(&["sum"]).contains("--file"));
        assert!(error(&["sum", "--file", "x", "--runs", "0"]).contains("at least 1"));
    }

    #[test]
    fn blast_needs_an_address_and_sane_sizes() {
        assert_eq!(
            parse(&["blast", "--to", "127.0.0.1:9", "--count", "5"]),
            Ok(Command::Blast {
                to: "127.0.0.1:9".parse().unwrap(),
                count: 5,
                size: 120
            })
        );
        let missing = parse(&["blast"]).unwrap_err().0;
        assert!(missing.contains("--to"), "{missing}");
        let bad = parse(&["blast", "--to", "nowhere"]).unwrap_err().0;
        assert!(bad.contains("\"nowhere\""), "{bad}");
        let small = parse(&["blast", "--to", "127.0.0.1:9", "--size", "2"])
            .unwrap_err()
            .0;
        assert!(small.contains("--size: 2"), "{small}");
    }

    #[test]
    fn wake_takes_a_number_of_seconds() {
        assert_eq!(parse(&["wake"]), Ok(Command::Wake { seconds: 10 }));
        assert_eq!(
            parse(&["wake", "--seconds", "3"]),
            Ok(Command::Wake { seconds: 3 })
        );
        let zero = parse(&["wake", "--seconds", "0"]).unwrap_err().0;
        assert!(zero.contains("--seconds"), "{zero}");
        let bad = parse(&["wake", "--seconds", "x"]).unwrap_err().0;
        assert!(bad.contains("\"x\""), "{bad}");
        let unknown = parse(&["wake", "--fast"]).unwrap_err().0;
        assert!(unknown.contains("--fast"), "{unknown}");
    }

    #[test]
    fn pace_needs_an_address_and_a_schedule() {
        assert_eq!(
            parse(&["pace", "--to", "127.0.0.1:9", "--schedule", "s.f64"]),
            Ok(Command::Pace {
                to: "127.0.0.1:9".parse().unwrap(),
                schedule: PathBuf::from("s.f64"),
                size: 16,
                batch: false
            })
        );
        assert!(matches!(
            parse(&["pace", "--batch", "--to", "127.0.0.1:9", "--schedule", "s"]),
            Ok(Command::Pace { batch: true, .. })
        ));
        let missing = parse(&["pace", "--to", "127.0.0.1:9"]).unwrap_err().0;
        assert!(missing.contains("--schedule"), "{missing}");
        let no_to = parse(&["pace", "--schedule", "s"]).unwrap_err().0;
        assert!(no_to.contains("--to"), "{no_to}");
        let small = parse(&[
            "pace",
            "--to",
            "127.0.0.1:9",
            "--schedule",
            "s",
            "--size",
            "3",
        ])
        .unwrap_err()
        .0;
        assert!(small.contains("--size: 3"), "{small}");
    }

    #[test]
    fn offset_takes_no_options() {
        assert_eq!(parse(&["offset"]), Ok(Command::Offset));
        assert_eq!(parse(&["offset", "--help"]), Ok(Command::Help));
        let unknown = parse(&["offset", "--now"]).unwrap_err().0;
        assert!(unknown.contains("--now"), "{unknown}");
    }

    #[test]
    fn defaults() {
        let rx = parse_rx(&["rx", "--out", "f.bin"]);
        assert_eq!(rx.out, PathBuf::from("f.bin"));
        assert_eq!(rx.opts, RxOptions::default());
        assert_eq!(rx.opts.addr.to_string(), "127.0.0.1:0");
        assert_eq!(rx.opts.rcvbuf, DEFAULT_RCVBUF);
    }

    #[test]
    fn every_option() {
        let rx = parse_rx(&[
            "rx",
            "--bind",
            "::1",
            "--port=5000",
            "--out",
            "o",
            "--expect",
            "7",
            "--idle-ms",
            "15",
            "--first-timeout-ms=30",
            "--rcvbuf",
            "4096",
        ]);
        assert_eq!(rx.opts.addr, SocketAddr::from((Ipv6Addr::LOCALHOST, 5000)));
        assert_eq!(rx.opts.expect, 7);
        assert_eq!(rx.opts.idle, Duration::from_millis(15));
        assert_eq!(rx.opts.first_timeout, Duration::from_millis(30));
        assert_eq!(rx.opts.rcvbuf, 4096);
        assert_eq!(
            parse_rx(&["rx", "--out", "o", "--bind", "[::]"])
                .opts
                .addr
                .to_string(),
            "[::]:0"
        );
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["rx", "--port", "1", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn errors_name_the_option_and_value() {
        assert_eq!(
            error(&["rx", "--port", "notanumber", "--out", "o"]),
            "--port: \"notanumber\" is not a port number (0-65535)"
        );
        assert_eq!(
            error(&["rx", "--port", "70000", "--out", "o"]),
            "--port: \"70000\" is not a port number (0-65535)"
        );
        assert!(error(&["rx", "--bind", "localhost", "--out", "o"]).contains("\"localhost\""));
        assert!(error(&["rx", "--out", "o", "--expect", "-1"]).contains("\"-1\""));
        assert!(error(&["rx", "--out", "o", "--idle-ms", "0"]).starts_with("--idle-ms: \"0\""));
        assert!(error(&["rx", "--out", "o", "--rcvbuf", "3000000000"]).contains("\"3000000000\""));
        assert_eq!(error(&["rx", "--out"]), "--out needs a value");
        assert_eq!(error(&["rx"]), "rx needs --out FILE");
        assert!(error(&["rx", "--out", "o", "--bogus", "1"]).contains("\"--bogus\""));
        assert!(error(&["rx", "--out", "o", "stray"]).contains("\"stray\""));
        assert!(error(&["tx"]).contains("\"tx\""));
        assert!(error(&[]).contains("missing subcommand"));
    }
}
