// Two runs of `npm run bench` side by side: the figures of an old build's
// results.json beside a new build's, row by row, with the machine's floor of
// each run (the two builds run one after the other in the same session, as
// the machine's speed changes from day to day).
//
//   npx tsx bench/compare.ts OLD.json NEW.json [--old-label L] [--new-label L] > bench/results/old-vs-new.md
import { readFileSync } from 'node:fs';
import { markdownTable } from './lib/report.js';
import { median, us } from './lib/harness.js';

interface Distribution { p50: number; p99: number; p999: number; max: number }
interface TimingRow { schedule: string; contender: string; run: number; stats: { latenessUs: Distribution; driftUs: number; lost: number }; cpuPct: number }
interface Results {
  date: string;
  wake: Record<string, Distribution & { count: number }>;
  micro: { name: string; recordsPerSec?: number; bytesPerSec?: number }[];
  timing: TimingRow[];
  throughput: { name: string; perSec: number; unit: string }[];
  memory: { log: string; sink: string; peakRssMB: number }[];
  seek?: { engineMs: number[]; jsMs: number[] };
}

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const [oldPath, newPath] = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
if (!oldPath || !newPath) {
  console.error('usage: npx tsx bench/compare.ts OLD.json NEW.json [--old-label L] [--new-label L]');
  process.exit(2);
}
const load = (path: string): Results => JSON.parse(readFileSync(path, 'utf8')) as Results;
const [before, after] = [load(oldPath), load(newPath)];
const [oldLabel, newLabel] = [flag('--old-label') ?? 'old', flag('--new-label') ?? 'new'];

const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && a !== 0 ? (b / a).toFixed(2) : '–');
const out: string[] = [];
out.push(`# ${oldLabel} against ${newLabel}: \`npm run bench\`, one run of each, one after the other`);
out.push('');
out.push(`${oldLabel}: run of ${before.date}. ${newLabel}: run of ${after.date}. Ratios are ${newLabel} ÷ ${oldLabel}.`);
out.push('');
out.push('## The machine in each run');
out.push('');
const floorRows = Object.keys(after.wake).map((name) => {
  const [o, n] = [before.wake[name], after.wake[name]];
  return [name, o ? `${us(o.p50)} / ${us(o.p99)} / ${us(o.max)}` : '–', n ? `${us(n.p50)} / ${us(n.p99)} / ${us(n.max)}` : '–', o ? o.count : '–', n ? n.count : '–'];
});
out.push(markdownTable(['what (µs)', `${oldLabel} p50 / p99 / max`, `${newLabel} p50 / p99 / max`, `${oldLabel} n`, `${newLabel} n`], floorRows));

out.push('## Timing (medians of the runs)');
out.push('');
const key = (r: TimingRow) => `${r.schedule}\u0000${r.contender}`;
const groups = (rs: TimingRow[]) => {
  const m = new Map<string, TimingRow[]>();
  for (const r of rs) m.set(key(r), [...(m.get(key(r)) ?? []), r]);
  return m;
};
const [oldTiming, newTiming] = [groups(before.timing), groups(after.timing)];
const med = (rs: TimingRow[] | undefined, f: (r: TimingRow) => number) => (rs ? median(rs.map(f)) : NaN);
const timingRows = [...newTiming.keys()].filter((k) => oldTiming.has(k)).map((k) => {
  const [o, n] = [oldTiming.get(k), newTiming.get(k)];
  const [schedule, contender] = k.split('\u0000');
  const p99 = (r: TimingRow) => r.stats.latenessUs.p99;
  return [
    schedule!,
    contender!,
    `${us(med(o, (r) => r.stats.latenessUs.p50))} → ${us(med(n, (r) => r.stats.latenessUs.p50))}`,
    `${us(med(o, p99))} → ${us(med(n, p99))}`,
    ratio(med(o, p99), med(n, p99)),
    `${us(med(o, (r) => r.stats.latenessUs.p999))} → ${us(med(n, (r) => r.stats.latenessUs.p999))}`,
    `${med(o, (r) => r.cpuPct).toFixed(1)} → ${med(n, (r) => r.cpuPct).toFixed(1)}`,
  ];
});
out.push(markdownTable(['schedule', 'contender', 'p50 µs', 'p99 µs', 'p99 ratio', 'p99.9 µs', 'CPU %'], timingRows));
const only = (a: Map<string, TimingRow[]>, b: Map<string, TimingRow[]>) => [...a.keys()].filter((k) => !b.has(k)).map((k) => k.replace('\u0000', ': '));
const onlyOld = only(oldTiming, newTiming);
const onlyNew = only(newTiming, oldTiming);
if (onlyOld.length) out.push(`Only in ${oldLabel}: ${onlyOld.join('; ')}.`, '');
if (onlyNew.length) out.push(`Only in ${newLabel}: ${onlyNew.join('; ')}.`, '');

out.push('## Throughput at speed Infinity');
out.push('');
const throughputRows = after.throughput.map((n) => {
  const o = before.throughput.find((t) => t.name === n.name);
  return [n.name, o ? (o.perSec / 1e6).toFixed(3) : '–', (n.perSec / 1e6).toFixed(3), o ? ratio(o.perSec, n.perSec) : '–', `M ${n.unit}`];
});
out.push(markdownTable(['', oldLabel, newLabel, 'ratio', 'unit'], throughputRows));

out.push('## Stages (tinybench)');
out.push('');
const microRows = after.micro.map((n) => {
  const o = before.micro.find((m) => m.name === n.name);
  const rate = (m: { recordsPerSec?: number } | undefined) => (m?.recordsPerSec ?? NaN) / 1e6;
  return [n.name, o ? rate(o).toFixed(2) : '–', rate(n).toFixed(2), ratio(rate(o), rate(n))];
});
out.push(markdownTable(['stage', `${oldLabel} M records/s`, `${newLabel} M records/s`, 'ratio'], microRows));

out.push('## Memory and seek');
out.push('');
const memoryRows = after.memory.map((n) => {
  const o = before.memory.find((m) => m.log === n.log && m.sink === n.sink);
  return [`${n.sink}, ${n.log} log: peak RSS MB`, o ? o.peakRssMB.toFixed(1) : '–', n.peakRssMB.toFixed(1)];
});
if (before.seek && after.seek) {
  memoryRows.push(['seek() → first record, engine, median ms', median(before.seek.engineMs).toFixed(2), median(after.seek.engineMs).toFixed(2)]);
  memoryRows.push(['seek() → first record in JS, median ms', median(before.seek.jsMs).toFixed(2), median(after.seek.jsMs).toFixed(2)]);
}
out.push(markdownTable(['', oldLabel, newLabel], memoryRows));
process.stdout.write(out.join('\n'));
