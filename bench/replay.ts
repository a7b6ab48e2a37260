// Engine figures for the README and issue notes:
//  1. records/s at speed Infinity to a JS listener (raw bytes, and msgpackr-decoded),
//     on a generated log of RECORDS records (default 2 000 000);
//  2. handover lateness p50/p99/max recorded by the engine replaying the
//     bundled fixture directory at speed 1 (RUNS runs, default 5).
//  3. UDP sink: send lateness at 1 kHz (5000 records) to a loopback receiver,
//     and datagrams/s at speed Infinity (UDP_RECORDS, default 1 000 000), as
//     the engine records them.
// Run: npm run bench  (uses the built addon: run `npm run build` first)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { createSocket } from 'node:dgram';
import { Replay, ReadFile } from '../src/index.js';
import { dataset, writeLargeLog } from '../__test__/helpers.js';

const RECORDS = Number(process.env.RECORDS ?? 2_000_000);
const RUNS = Number(process.env.RUNS ?? 5);
const UDP_RECORDS = Number(process.env.UDP_RECORDS ?? 1_000_000);

/** A loopback UDP receiver that only counts datagrams. */
async function receiver(): Promise<{ port: number; count: () => number; close: () => void }> {
  const socket = createSocket('udp4');
  let n = 0;
  socket.on('message', () => void n++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.setRecvBufferSize(8 << 20);
  return { port: socket.address().port, count: () => n, close: () => socket.close() };
}

async function udpReplay(file: string, speed: number, port: number) {
  const replay = new Replay(file, { speed, js: false, udp: { destination: `udp://127.0.0.1:${port}` } });
  const t0 = performance.now();
  replay.start();
  await replay.done;
  const seconds = (performance.now() - t0) / 1000;
  const stats = replay.udpStats()!;
  replay.close();
  return { seconds, stats };
}
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
  console.log('(engine: handover by the scheduler thread; js: listener callback time − deadline)');
  const us = (x: number) => (x * 1e6).toFixed(1).padStart(7);
  const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!;
  for (let i = 0; i < RUNS; i++) {
    const replay = new Replay(dataset);
    const js: number[] = [];
    replay.on('message', (m) => js.push((Number(process.hrtime.bigint()) - m.deadline) / 1e9));
    replay.start();
    await replay.done;
    const { lateness, late, delivered } = replay.stats();
    js.sort((a, b) => a - b);
    console.log(
      `run ${i + 1}: engine p50 ${us(lateness.p50)}  p99 ${us(lateness.p99)}  max ${us(lateness.max)}` +
        ` | js p50 ${us(pct(js, 0.5))}  p99 ${us(pct(js, 0.99))}  max ${us(js.at(-1)!)}  (delivered ${delivered}, late ${late})`,
    );
    replay.close();
  }

  console.log('\n# UDP sink to a loopback receiver (engine send lateness, µs)');
  const rx = await receiver();
  const kHz = writeLargeLog(join(dir, 'OneKHz.log'), 5000, 0.001, 'Tick');
  for (let i = 0; i < 3; i++) {
    const { stats } = await udpReplay(kHz, 1, rx.port);
    const l = stats.lateness;
    console.log(`1 kHz run ${i + 1}: p50 ${us(l.p50)}  p99 ${us(l.p99)}  max ${us(l.max)}  (datagrams ${stats.datagrams}, failures ${stats.sendFailures})`);
  }
  const udpFile = writeLargeLog(join(dir, 'Udp.log'), UDP_RECORDS, 0.000001, 'Tick');
  for (let i = 0; i < 3; i++) {
    const before = rx.count();
    const { seconds, stats } = await udpReplay(udpFile, Infinity, rx.port);
    await new Promise((r) => setTimeout(r, 200));
    console.log(
      `Infinity run ${i + 1}: ${(stats.datagrams / seconds / 1e3).toFixed(0)} k datagrams/s sent` +
        ` (received ${rx.count() - before} of ${stats.datagrams}, failures ${stats.sendFailures})`,
    );
  }
  rx.close();

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
