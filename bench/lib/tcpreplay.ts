// tcpreplay as a contender: its version, the loopback sysctls that let
// injected 127.0.0.1 frames reach local sockets, and a timed run with its CPU time.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { onCpu } from './cpu.js';

/** The tcpreplay version (e.g. "4.4.3"), or null when tcpreplay is not installed or does not run. */
export function tcpreplayVersion(): string | null {
  const result = spawnSync('tcpreplay', ['-V'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error) return null;
  // Prints to stderr: "tcpreplay version: 4.4.3 (build git:v4.4.3)".
  const match = /tcpreplay version:\s*(\S+)/.exec(`${result.stdout}\n${result.stderr}`);
  return match ? match[1]! : null;
}

const SYSCTL_DIR = '/proc/sys/net/ipv4/conf';

/**
 * Frames injected on lo with source and destination 127.0.0.1 go through IPv4
 * input routing like wire traffic. Measured on Linux (rp_filter 0, 1 and 2 made
 * no difference): without route_localnet they are dropped as martian (127/8 is
 * not routable on input), without accept_local as having a local source
 * address; both are needed, neither alone is enough. Setting them on lo is
 * enough (the kernel ORs lo with "all").
 */
export const LOOPBACK_SYSCTLS: Readonly<Record<string, string>> = Object.freeze({
  'lo/route_localnet': '1',
  'lo/accept_local': '1',
});

/**
 * Run `fn` with LOOPBACK_SYSCTLS set, restoring every value it changed
 * afterwards, also when `fn` throws or setting a later one fails. Needs root
 * (or CAP_NET_ADMIN over a writable /proc/sys).
 */
export async function withLoopbackSysctls<T>(fn: () => Promise<T>): Promise<T> {
  const changed: { path: string; original: string }[] = [];
  const restore = () => {
    const failures: string[] = [];
    for (const { path, original } of changed.reverse()) {
      try {
        writeFileSync(path, original);
      } catch (error) {
        failures.push(`${path} (was ${original}): ${(error as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(`could not restore sysctls: ${failures.join('; ')}`);
  };

  try {
    for (const [name, value] of Object.entries(LOOPBACK_SYSCTLS)) {
      const path = `${SYSCTL_DIR}/${name}`;
      const original = readFileSync(path, 'utf8').trim();
      if (original === value) continue;
      try {
        writeFileSync(path, value);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new Error(
          `cannot set net.ipv4.conf.${name.replace('/', '.')}=${value} (${code ?? (error as Error).message}); ` +
            'tcpreplay on lo needs root with a writable /proc/sys (e.g. sudo, or a container with --privileged / --sysctl)',
          { cause: error },
        );
      }
      changed.push({ path, original });
    }
  } catch (error) {
    restore();
    throw error;
  }

  try {
    return await fn();
  } finally {
    restore();
  }
}

export interface TcpreplayOptions {
  iface?: 'lo';
  /** Send as fast as possible instead of at the pcap's timing. */
  topspeed?: boolean;
  /** Run tcpreplay on this CPU only. */
  cpu?: number;
}

export interface TcpreplayRun {
  /** Wall time from spawn to exit, including startup and loading the pcap into memory. */
  wallNs: number;
  cpuUserS: number;
  cpuSysS: number;
  stdout: string;
  /** "Successful packets" as tcpreplay reports it (or the "Actual" count). */
  sent?: number;
  failed?: number;
  /** tcpreplay's own figure for the send phase ("sent in X seconds"). */
  sendSeconds?: number;
  /** The argument list tcpreplay ran with. */
  args: string[];
}

let clockTicksPerSecond: number | undefined;
function clockTicks(): number {
  if (clockTicksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const ticks = Number(out.stdout?.trim());
    clockTicksPerSecond = Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  }
  return clockTicksPerSecond;
}

/** cutime and cstime (fields 16, 17) of a /proc/PID/stat line, in clock ticks. */
export function parseChildCpuTicks(stat: string): { cutime: number; cstime: number } {
  // Field 2 (comm) is parenthesised and may contain spaces: count from its closing paren.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
  const cutime = Number(rest[16 - 3]);
  const cstime = Number(rest[17 - 3]);
  if (!Number.isFinite(cutime) || !Number.isFinite(cstime)) throw new Error(`unexpected /proc/PID/stat: ${stat.slice(0, 200)}`);
  return { cutime, cstime };
}

/** Parse tcpreplay's end-of-run summary. */
export function parseTcpreplayOutput(stdout: string): { sent?: number; failed?: number; sendSeconds?: number } {
  const actual = /Actual:\s*(\d+)\s+packets\s+\(\d+ bytes\)\s+sent in\s+([\d.]+)\s+seconds/.exec(stdout);
  const successful = /Successful packets:\s*(\d+)/.exec(stdout);
  const failed = /Failed packets:\s*(\d+)/.exec(stdout);
  const out: { sent?: number; failed?: number; sendSeconds?: number } = {};
  if (successful) out.sent = Number(successful[1]);
  else if (actual) out.sent = Number(actual[1]);
  if (failed) out.failed = Number(failed[1]);
  if (actual) out.sendSeconds = Number(actual[2]);
  return out;
}

// The shell reaps tcpreplay and then writes its own /proc stat to fd 3: the
// cutime/cstime there are exactly tcpreplay's CPU time (cat is not yet reaped).
const CPU_WRAPPER = 'tcpreplay "$@"; status=$?; cat /proc/$$/stat >&3; exit $status';

/**
 * Replay `pcap` on lo. Timed mode uses `--timer=gtod`, tcpreplay's default and
 * its most accurate timer (a gettimeofday()/sched_yield() spin). Measured with
 * 4.4.3 on lo: every gap comes out ~10 µs long with gtod and ~80 µs long with
 * "nano" or "select" (they sleep and wake late), and 4.4 times each packet
 * from the previous one, so the error accumulates as drift; "ioport" is
 * i386-only. `-K` preloads the pcap so no disk read lands between packets;
 * `--no-flow-stats` drops per-packet flow accounting.
 */
export function runTcpreplay(pcap: string, opts: TcpreplayOptions = {}): Promise<TcpreplayRun> {
  const args = ['-i', opts.iface ?? 'lo', '-K', '--no-flow-stats'];
  args.push(...(opts.topspeed ? ['--topspeed'] : ['--timer=gtod']));
  args.push(pcap);

  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(...onCpu(opts.cpu, 'sh', ['-c', CPU_WRAPPER, 'sh', ...args]), { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const stat: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => stdout.push(b));
    child.stderr!.on('data', (b: Buffer) => stderr.push(b));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => stat.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const wallNs = Number(process.hrtime.bigint() - started);
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      if (code !== 0) {
        const why = code === 127 ? 'tcpreplay not found' : `exit ${code ?? signal}`;
        reject(new Error(`tcpreplay ${args.join(' ')}: ${why}\n${err.trim()}\n${out.trim()}`.trim()));
        return;
      }
      try {
        const { cutime, cstime } = parseChildCpuTicks(Buffer.concat(stat).toString('utf8'));
        const ticks = clockTicks();
        resolve({ wallNs, cpuUserS: cutime / ticks, cpuSysS: cstime / ticks, stdout: out, ...parseTcpreplayOutput(out), args });
      } catch (error) {
        reject(error);
      }
    });
  });
}
