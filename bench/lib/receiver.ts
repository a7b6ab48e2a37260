// The kernel-timestamping UDP receiver (crates/netreplay-bench, `rx`), run as
// a process of its own so that the replaying process is measured alone.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { onCpu } from './cpu.js';

export interface Arrivals {
  /** Arrival time (CLOCK_MONOTONIC ns, kernel receive timestamp) by record index; NaN if it never came. */
  arrivalNs: Float64Array;
  received: number;
  /** Datagrams whose index was out of range or seen twice. */
  unexpected: number;
  /**
   * Every datagram in arrival order, repeats included (a looped log sends
   * each index once per pass): its index (last 4 bytes) and arrival time.
   */
  inOrder: { seq: Uint32Array; rxNs: Float64Array };
  summary: { received: number; noTimestamp: number; offsetDriftNs: number; bracketNs: number };
}

export interface Receiver {
  port: number;
  /** Resolves when the receiver has `expect` datagrams or saw none for `idleMs`. */
  arrivals: Promise<Arrivals>;
  kill(): void;
}

/** Build the receiver (cargo, offline: no new crates) and return its path. */
export function buildReceiver(root: string): string {
  const build = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'netreplay-bench'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (build.status !== 0) throw new Error(`cargo build -p netreplay-bench failed (status ${build.status})`);
  const bin = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'release', 'netreplay-bench');
  if (!existsSync(bin)) throw new Error(`receiver not found at ${bin} after the build`);
  return bin;
}

const RECORD_BYTES = 16;

export async function startReceiver(
  bin: string,
  opts: { out: string; count: number; expect?: number; idleMs?: number; cpu?: number },
): Promise<Receiver> {
  const args = ['rx', '--port', '0', '--out', opts.out, '--idle-ms', String(opts.idleMs ?? 2000)];
  if (opts.expect !== undefined) args.push('--expect', String(opts.expect));
  const child = spawn(...onCpu(opts.cpu, bin, args), { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new Error('the receiver exited before it reported its port');
  const { port } = JSON.parse(first.value) as { port: number };
  const arrivals = (async (): Promise<Arrivals> => {
    let last = '';
    for (let line = await iterator.next(); !line.done; line = await iterator.next()) last = line.value;
    const code: number | null = child.exitCode ?? (await new Promise((r) => child.once('exit', r)));
    if (code !== 0) throw new Error(`the receiver exited with ${code}`);
    const summary = JSON.parse(last) as Arrivals['summary'];
    const bytes = readFileSync(opts.out);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const arrivalNs = new Float64Array(opts.count).fill(NaN);
    const records = Math.floor(bytes.byteLength / RECORD_BYTES);
    const inOrder = { seq: new Uint32Array(records), rxNs: new Float64Array(records) };
    let received = 0;
    let unexpected = 0;
    for (let k = 0; k < records; k++) {
      const at = k * RECORD_BYTES;
      const seq = view.getUint32(at, true);
      const rx = Number(view.getBigInt64(at + 8, true));
      inOrder.seq[k] = seq;
      inOrder.rxNs[k] = rx;
      if (seq >= opts.count || !Number.isNaN(arrivalNs[seq]!)) {
        unexpected++;
        continue;
      }
      arrivalNs[seq] = rx;
      received++;
    }
    return { arrivalNs, received, unexpected, inOrder, summary };
  })();
  return { port, arrivals, kill: () => child.kill() };
}

/** One CLOCK_REALTIME − CLOCK_MONOTONIC measurement (`netreplay-bench offset`): realtime = monotonic + offsetNs. */
export interface ClockOffset {
  monoNs: number;
  /** A bigint: epoch nanoseconds are beyond a double's exact integers. */
  offsetNs: bigint;
  /** The measurement's uncertainty: the mono–real–mono bracket, ns. */
  bracketNs: number;
}

export function clockOffset(bin: string): ClockOffset {
  const out = spawnSync(bin, ['offset'], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`netreplay-bench offset failed (status ${out.status}): ${out.stderr}`);
  const field = (name: string) => {
    const m = new RegExp(`"${name}":(-?\\d+)`).exec(out.stdout);
    if (!m) throw new Error(`netreplay-bench offset printed no ${name}: ${out.stdout}`);
    return BigInt(m[1]!);
  };
  return { monoNs: Number(field('monoNs')), offsetNs: field('offsetNs'), bracketNs: Number(field('bracketNs')) };
}

/**
 * `netreplay-bench pace`: the schedule in `scheduleFile` (f64 ns) sent to
 * 127.0.0.1:`port` by a bare sender spinning between sends, the best timing
 * this machine allows (`batch`: equal times in one sendmmsg): its origin
 * (CLOCK_MONOTONIC ns of time 0), and the CPU it used (µs) over its run (ns).
 */
export function paceSchedule(bin: string, port: number, scheduleFile: string, batch = false): Promise<{ originNs: number; cpuUs: number; wallNs: number }> {
  return new Promise((resolve, reject) => {
    const args = ['pace', '--to', `127.0.0.1:${port}`, '--schedule', scheduleFile, ...(batch ? ['--batch'] : [])];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const field = (name: string) => Number(new RegExp(`"${name}":(\\d+)`).exec(out)?.[1] ?? NaN);
      const originNs = field('originNs');
      if (code !== 0 || !Number.isFinite(originNs)) return reject(new Error(`netreplay-bench pace exited with ${code}: ${out}`));
      resolve({ originNs, cpuUs: field('cpuUs'), wallNs: field('wallNs') });
    });
  });
}
