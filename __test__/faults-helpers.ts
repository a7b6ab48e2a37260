// Helpers of faults.spec.ts: logs whose records are numbered (payload = index,
// time = index * STEP), the byte offset of a record, and a runner for the
// child processes (faults-child.ts) in which the faults are provoked, so that
// a crash shows as the child's exit signal instead of killing the test run.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { header } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
export const childScript = join(here, 'faults-child.ts');

/** Time step between records (s): the records of one stream are 1 µs apart. */
export const STEP = 0.000001;

const packr = new Packr({ useRecords: false });

function recordLine(i: number): string {
  return `${(i * STEP).toFixed(6).padStart(12)}    ''          ${Buffer.from(packr.pack(i)).toString('hex')}\n`;
}

/**
 * Records `from` .. `to - 1` (payload = index, time = index * STEP), with an
 * MCL header of `type` unless `type` is null (a later part of a split set).
 * Returns the byte offset of each record's line (Float64Array, `to - from` long).
 */
export function writeNumbered(path: string, from: number, to: number, type: string | null = 'Big'): Float64Array {
  const offsets = new Float64Array(to - from);
  const chunks: string[] = [];
  let at = 0;
  if (type !== null) {
    const h = header(type);
    chunks.push(h);
    at += Buffer.byteLength(h);
  }
  let pending: string[] = [];
  for (let i = from; i < to; i++) {
    const l = recordLine(i);
    offsets[i - from] = at;
    at += l.length; // ASCII
    pending.push(l);
    if (pending.length === 100_000) {
      chunks.push(pending.join(''));
      pending = [];
    }
  }
  chunks.push(pending.join(''));
  writeFileSync(path, chunks.join(''));
  return offsets;
}

/** The text of records `from` .. `to - 1`, as writeNumbered writes them. */
export function numberedText(from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += recordLine(i);
  return s;
}

/**
 * Byte offset of the line of the `k`-th record (0-based) of an MCL file:
 * header lines (`#`) are skipped. Reads the file in chunks.
 */
export function recordOffset(path: string, k: number): number {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let base = 0;
    let lineStart = 0;
    let atLineStart = true;
    let seen = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, base);
      if (n === 0) throw new Error(`${path}: fewer than ${k + 1} records`);
      for (let i = 0; i < n; i++) {
        if (atLineStart) {
          lineStart = base + i;
          atLineStart = false;
          if (buf[i] !== 0x23 /* # */) {
            if (seen === k) return lineStart;
            seen++;
          }
        }
        if (buf[i] === 0x0a) atLineStart = true;
      }
      base += n;
    }
  } finally {
    closeSync(fd);
  }
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The child was killed by us after `timeoutMs` (a hang). */
  timedOut: boolean;
  /** ms from spawn to exit. */
  elapsedMs: number;
  /** Parsed `RESULT {json}` lines of stdout. */
  results: any[];
  /** hrtime (ms) at which each `MARK <name> …` line of stdout arrived, by its first word. */
  marks: Record<string, number>;
  /** hrtime (ms) of the exit. */
  exitedAt: number;
}

// At most two children at once: the machine has two cores, and several of
// them stream tens of MB.
let running = 0;
const waiting: (() => void)[] = [];
async function slot(): Promise<() => void> {
  if (running >= 2) await new Promise<void>((r) => waiting.push(r));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * Run `faults-child.ts <scenario> <json args>` under tsx. Never rejects: a
 * crash is reported as the exit signal, a hang as `timedOut` (SIGKILL).
 * `prefix` is shell run before the child in `sh -c` (e.g. `ulimit -n 8192`);
 * `nodeArgs` go to node (e.g. `--expose-gc`); `setup` runs once a child slot
 * is free, just before the spawn.
 */
export async function runChild(
  scenario: string,
  args: unknown,
  {
    timeoutMs = 60_000,
    prefix = '',
    nodeArgs = [],
    setup,
  }: { timeoutMs?: number; prefix?: string; nodeArgs?: string[]; setup?: () => void } = {},
): Promise<ChildResult> {
  const release = await slot();
  try {
    // Large copies are made only when a child is about to use them.
    setup?.();
    return await new Promise<ChildResult>((resolve) => {
      const argv = [...nodeArgs, '--import=tsx', childScript, scenario, JSON.stringify(args)];
      const start = nowMs();
      const child = prefix
        ? spawn('sh', ['-c', `${prefix} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let partial = '';
      const marks: Record<string, number> = {};
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        const t = nowMs();
        stdout += d;
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const l of lines) if (l.startsWith('MARK ')) marks[l.slice(5).trim().split(' ')[0]!] ??= t;
      });
      child.stderr.on('data', (d: string) => (stderr += d));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const exitedAt = nowMs();
        const results = stdout
          .split('\n')
          .filter((l) => l.startsWith('RESULT '))
          .map((l) => JSON.parse(l.slice(7)));
        resolve({ code, signal, stdout, stderr, timedOut, elapsedMs: exitedAt - start, results, marks, exitedAt });
      });
    });
  } finally {
    release();
  }
}

/** One line for assertion messages: how the child ended, and its stderr tail. */
export function describe(r: ChildResult): string {
  const how = r.timedOut ? `hung (killed after ${Math.round(r.elapsedMs)} ms)` : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  return `child ${how}; stdout tail: ${r.stdout.slice(-600)}; stderr tail: ${r.stderr.slice(-1500)}`;
}

/** Write a small file: `n` numbered records (a few pages). */
export function writeSmall(path: string, n = 400, type: string | null = 'Small'): string {
  writeNumbered(path, 0, n, type);
  return path;
}

export { join };
