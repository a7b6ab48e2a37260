// What the bench drivers (run.ts, timeline.ts) share: one measured run per
// contender process, the machine's own timing ceiling (`netreplay-bench
// wake`), the machine description, and the number formats of their reports.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Result, Task } from '../contender.js';
import { onCpu } from './cpu.js';

/** The repository root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};

/** A µs figure for the reports: one decimal below 100, whole above; '–' when not measured. */
export const us = (x: number) => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1)) : '–');

/** A `kB` field of this process's /proc/self/status (VmRSS, VmHWM, RssAnon, …), in kB; NaN if absent. */
export function statusKb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU time over wall time, % of one core. */
export function cpuPercent(cpuUs: number, wallNs: number): number {
  return (100 * cpuUs * 1e3) / wallNs;
}

/** Run one task in a contender process (on one CPU if `cpu` is given); its one JSON line. */
export function contender(task: Task, cpu?: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(...onCpu(cpu, process.execPath, ['--import', 'tsx', join(root, 'bench', 'contender.ts'), JSON.stringify(task)]), {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`contender ${task.kind} exited with ${code}`));
      const last = out.trim().split('\n').at(-1) ?? '';
      resolve(JSON.parse(last) as Result);
    });
  });
}

export interface WakeSummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  over250us: number;
}

/**
 * `netreplay-bench wake` for `seconds`: what the machine does to any timing
 * thread (how late sleeps wake, how long a spinning thread stalls), printed
 * with `log` as it comes.
 */
export function measureMachine(rxBin: string, seconds: number, log: (line: string) => void): Record<string, WakeSummary> {
  const wake = JSON.parse(execFileSync(rxBin, ['wake', '--seconds', String(seconds)], { encoding: 'utf8' })) as Record<string, WakeSummary>;
  for (const [name, w] of Object.entries(wake)) {
    log(`  ${name.padEnd(20)} n ${String(w.count).padStart(6)}  p50 ${us(w.p50)}  p99 ${us(w.p99)}  p99.9 ${us(w.p999)}  max ${us(w.max)} µs  (> 250 µs: ${w.over250us})`);
  }
  return wake;
}

/** The machine and toolchain, for the results files. */
export function machineInfo() {
  const rustc = (() => {
    try {
      return execFileSync('rustc', ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    rustc,
  };
}
