// Engine figures for the README and issue notes:
//  1. records/s at speed Infinity to a JS listener (raw bytes, and msgpackr-decoded),
//     on a generated log of RECORDS records (default 2 000 000);
//  2. handover lateness p50/p99/max recorded by the engine replaying the
//     bundled fixture directory at speed 1 (RUNS runs, default 5).
// Run: npm run bench  (uses the built addon: run `npm run build` first)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { Replay, ReadFile } from '../src/index.js';
import { dataset, writeLargeLog } from '../__test__/helpers.js';

const RECORDS = Number(process.env.RECORDS ?? 2_000_000);
const RUNS = Number(process.env.RUNS ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'netreplay-bench-'));

async function throughput(file: string, decode: boolean): Promise<number> {
  const replay = new Replay(file, { speed: Infinity, decode });
  let n = 0;
  replay.on('message', () => void n++);
  const t0 = performance.now();
  replay.start();
  await replay.done;
  const seconds = (performance.now() - t0) / 1000;
  replay.close();
  if (n !== RECORDS) throw new Error(`delivered ${n} of ${RECORDS}`);
  return n / seconds;
}

try {
  const file = writeLargeLog(join(dir, 'Big.log'), RECORDS);
  console.log(`# JS listener at speed Infinity, ${RECORDS} records (median of 3)`);
  for (const decode of [false, true]) {
    const rates = [];
    for (let i = 0; i < 3; i++) rates.push(await throughput(file, decode));
    rates.sort((a, b) => a - b);
    console.log(`${decode ? 'decoded' : 'raw    '}: ${(rates[1]! / 1e6).toFixed(2)} M records/s  (runs: ${rates.map((r) => (r / 1e6).toFixed(2)).join(', ')})`);
  }

  console.log(`\n# Fixture directory at speed 1: engine handover lateness (µs), ${RUNS} runs`);
  for (let i = 0; i < RUNS; i++) {
    const replay = new Replay(dataset);
    replay.start();
    await replay.done;
    const { lateness, late, delivered } = replay.stats();
    const us = (x: number) => (x * 1e6).toFixed(1).padStart(7);
    console.log(`run ${i + 1}: p50 ${us(lateness.p50)}  p99 ${us(lateness.p99)}  max ${us(lateness.max)}  (delivered ${delivered}, late ${late})`);
    replay.close();
  }

  console.log('\n# Reader: ReadFile.read() on the generated log (tinybench)');
  const bench = new Bench({ time: 1000 });
  const reader = new ReadFile(file);
  bench.add('ReadFile.read() (native decode + msgpackr)', () => {
    if (reader.read() === null) reader.reset();
  });
  await bench.run();
  console.table(bench.table());
} finally {
  rmSync(dir, { recursive: true, force: true });
}
