// Records/s of delivery to JS at speed Infinity, one mode per process run, so
// that two builds can be compared side by side (run it from each worktree):
//   npx tsx bench/js-path.ts [records=1500000] [mode ...]
// Modes: null (native null sink, the reference), raw (decode: false, a
// 'message' listener: the "JS raw" row of bench/run.ts), bytes (raw, with
// rawPayload: the listener reads the payload bytes), decoded (msgpackr:
// "JS decoded"), iter (for await, decode: false). Prints one JSON line a mode.
import { Replay } from '../src/index.js';
import { generatedLog, sensorPayload } from './lib/logs.js';

type Mode = 'null' | 'raw' | 'bytes' | 'decoded' | 'iter';
const modes: readonly Mode[] = ['null', 'raw', 'bytes', 'decoded', 'iter'];

const records = Number(process.argv[2] ?? 1_500_000);
const asked = process.argv.slice(3) as Mode[];
for (const m of asked) if (!modes.includes(m)) throw new Error(`unknown mode ${m}; one of ${modes.join(', ')}`);
const log = generatedLog(`sensor-${records}`, records, 1_000, sensorPayload);

async function once(mode: Mode): Promise<{ n: number; seconds: number; cpuSeconds: number; check: number }> {
  const replay = new Replay(log.path, {
    speed: Infinity,
    js: mode !== 'null',
    decode: mode === 'decoded',
    rawPayload: mode === 'bytes',
  });
  let n = 0;
  // Something of each message is read, so that nothing is optimised away.
  let check = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  if (mode === 'iter') {
    for await (const m of replay) {
      n++;
      check += m.pass;
    }
  } else {
    if (mode === 'raw') replay.on('message', (m) => void (n++, (check += m.pass)));
    if (mode === 'bytes') replay.on('message', (m) => void (n++, (check += m.payloadBytes!.length)));
    if (mode === 'decoded') replay.on('message', (m) => void (n++, (check += (m.payload as { seq: number }).seq)));
    replay.start();
    await replay.done;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  if (mode === 'null') n = replay.stats().delivered;
  replay.close();
  if (n !== records) throw new Error(`${mode}: ${n} of ${records} records`);
  return { n, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, check };
}

// A first pass reads the log into the page cache for every mode (skipped
// with JS_PATH_WARM=0, for a profile of one mode alone).
if (process.env.JS_PATH_WARM !== '0') await once('null');
for (const mode of asked.length > 0 ? asked : modes) {
  const { seconds, cpuSeconds, check } = await once(mode);
  // cpuPerRecordNs: the whole process (every thread), a steadier figure than
  // the rate on a shared machine.
  const cpuPerRecordNs = Math.round((cpuSeconds * 1e9) / records);
  console.log(JSON.stringify({ mode, records, seconds: +seconds.toFixed(4), perSec: Math.round(records / seconds), cpuPerRecordNs, check }));
}
