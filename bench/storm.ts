// Storm tests of playback control, long version:
//   npx tsx bench/storm.ts [--seconds N] [--seed S] [--records R] [--ops K]
// Storms with seeds S, S+1, … (odd: 'message' events, even: for await) until
// N seconds have passed, after the known-defect repro (start(); stop();
// start()). Prints every failure with its seed, the op log tail and the
// state, then one summary line. Exit code 1 if anything failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  closeDeliveryRepro,
  cycleRepro,
  doubleEndRepro,
  resultLine,
  runStorm,
  summaryLine,
  Watchdog,
  writeCycleLog,
  writeStormLog,
  type StormResult,
} from '../__test__/storm-lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string', default: '1' },
    records: { type: 'string', default: '3000' },
    ops: { type: 'string', default: '400' },
    verbose: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const firstSeed = Number(values.seed);
const records = Number(values.records);
const ops = Number(values.ops);
for (const [k, v] of Object.entries({ seconds, seed: firstSeed, records, ops })) {
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: not a number`);
}

const dir = mkdtempSync(join(tmpdir(), 'netreplay-storm-'));
const watchdog = new Watchdog(20_000);
let exitCode = 0;
try {
  const t0 = performance.now();
  const cycle = writeCycleLog(join(dir, 'cycle'), 60);
  for (const speed of [1, Infinity]) {
    const res = await cycleRepro(cycle, 60, speed, 100);
    const ok = res.mislabelled === 0 && res.broken === 0;
    console.log(
      `known defect start(); stop(); start(), speed ${speed}: ${res.repetitions} repetitions, ${res.messages} messages, ` +
        `${res.mislabelled} mislabelled, ${res.broken} with loss/dup/order errors${ok ? '' : ` — FAILED: ${res.firstBad}`}`,
    );
    if (!ok) exitCode = 1;
  }

  const long = writeCycleLog(join(dir, 'cycle2000'), 2000);
  for (const speed of [1, Infinity]) {
    const c = await closeDeliveryRepro(long, speed, 5);
    const ok = c.leaked === 0 && c.leakedAfterStop === 0;
    console.log(
      `close() delivering, speed ${speed}: start(); JS busy 20 ms; close(): ${c.leaked} of ${c.repetitions} replays emitted ` +
        `${c.messages} messages after close(); with stop(): ${c.leakedAfterStop} of ${c.repetitions}${ok ? '' : ' — FAILED'}`,
    );
    if (!ok) exitCode = 1;
    const e = await doubleEndRepro(cycle, speed);
    const ok2 = e.messages === 60 && e.ends === 1;
    console.log(
      `'end' twice, speed ${speed}: start(); JS busy 100 ms; pause() -> ${e.pause}; start() -> ${e.start}: ` +
        `${e.messages} messages, ${e.ends} 'end' events${ok2 ? '' : ' — FAILED'}`,
    );
    if (!ok2) exitCode = 1;
  }

  const results: StormResult[] = [];
  const kinds = new Map<string, { count: number; seeds: number[] }>();
  const end = t0 + seconds * 1000;
  for (let seed = firstSeed; performance.now() < end; seed++) {
    const log = writeStormLog(join(dir, `rec-${seed}`), records, seed);
    const res = await runStorm({
      seed,
      log,
      mode: seed % 2 === 1 ? 'events' : 'iterate',
      ops,
      budgetMs: Math.max(1000, end - performance.now()),
      watchdog,
    });
    rmSync(log.dir, { recursive: true, force: true });
    results.push(res);
    if (values.verbose) console.log(resultLine(res));
    if (res.failure !== undefined) {
      exitCode = 1;
      // Group by the message with its numbers blanked out.
      const first = res.failure.split('\n')[0]!.replace(/^storm seed=\d+ mode=\S+ step \d+: /, '');
      const kind = `${res.mode}: ${first.replace(/\d+(\.\d+)?/g, 'N')}`;
      const k = kinds.get(kind) ?? { count: 0, seeds: [] };
      k.count++;
      k.seeds.push(seed);
      kinds.set(kind, k);
      if (k.count <= 2) console.log(`\n${res.failure}\n`);
    }
  }
  if (kinds.size > 0) {
    console.log('failures by kind:');
    for (const [kind, k] of kinds) console.log(`  ${k.count}× ${kind} — seeds ${k.seeds.slice(0, 12).join(', ')}${k.seeds.length > 12 ? ', …' : ''}`);
  }
  console.log(summaryLine(results, performance.now() - t0));
} finally {
  watchdog.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = exitCode;
