// Test helpers: the bundled fixtures, and MCL logs written on the fly.
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const dataset = join(root, 'fixtures', 'mcl', 'dataset');

const packr = new Packr({ useRecords: false });

export function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'netreplay-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface LogRecord {
  t: number;
  topic?: string;
  payload: unknown;
}

/** An MCL header as MCL writes it. `type` null writes `>>> None` (raw). */
export function header(type: string | null, created = '1970-01-01 00:00:00'): string {
  return [
    '#-----------------------------------------------------------------',
    '# MCL_LOG',
    '#     -- version     1.0',
    '#     -- revision    ffff000000000000000000000000000000000000',
    `#     -- created     ${created}`,
    '# ',
    '# The following data type was recorded in this file:',
    '# ',
    `#      >>> ${type ?? 'None'}`,
    '# ',
    '#     <Time>    <Topic>     <Payload>',
    '#-----------------------------------------------------------------',
    '',
  ].join('\n');
}

export function line(r: LogRecord): string {
  const hex = Buffer.from(packr.pack(r.payload)).toString('hex');
  const topic = `'${r.topic ?? ''}'`;
  return `${r.t.toFixed(5).padStart(12)}    ${topic.padEnd(12)}${hex}\n`;
}

export function writeLog(path: string, records: LogRecord[], type: string | null | undefined, created?: string): string {
  const head = type === undefined ? '' : header(type, created);
  writeFileSync(path, head + records.map(line).join(''));
  return path;
}

/** A log of `n` records, one every `step` s, payload = index, written fast. */
export function writeLargeLog(path: string, n: number, step = 0.000001, type = 'Big'): string {
  const chunks: string[] = [header(type)];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    lines.push(`${(i * step).toFixed(6).padStart(12)}    ''          ${Buffer.from(packr.pack(i)).toString('hex')}`);
    if (lines.length === 100_000) chunks.push(lines.splice(0).join('\n') + '\n');
  }
  if (lines.length) chunks.push(lines.join('\n') + '\n');
  writeFileSync(path, chunks.join(''));
  return path;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether this process may enter the real-time class, from what the kernel says of it. */
export function mayBeRealtime(): boolean {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(read('/proc/self/status') ?? '')?.[1];
  const sysNice = capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << 23n)) !== 0n;
  const limit = /^Max realtime priority\s+(\S+)/m.exec(read('/proc/self/limits') ?? '')?.[1];
  const rtprio = limit === 'unlimited' || Number(limit) >= 1;
  const budget = (path: string) => read(path)?.trim() !== '0';
  return (sysNice || rtprio) && budget('/proc/sys/kernel/sched_rt_runtime_us') && budget('/sys/fs/cgroup/cpu/cpu.rt_runtime_us');
}
