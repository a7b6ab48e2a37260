// Peak RSS of a JS listener taking raw payloads at speed Infinity (the
// memory rows of `npm run bench`, alone), with the RSS (anonymous, file),
// the JS heap and external memory each second:
//   npx tsx bench/js-rss.ts LOG
// Run it from two builds' worktrees alternately to compare them.
import { Replay } from '../src/index.js';
import { statusKb } from './lib/harness.js';
const kb = (field: string) => statusKb(field) / 1024;
const log = process.argv[2];
if (!log) {
  console.error('usage: npx tsx bench/js-rss.ts LOG');
  process.exit(2);
}
const replay = new Replay(log, { speed: Infinity, js: true, decode: false });
let n = 0;
replay.on('message', () => void n++);
const t = setInterval(() => {
  const m = process.memoryUsage();
  console.log(`n ${n} anon ${kb('RssAnon').toFixed(0)} file ${kb('RssFile').toFixed(0)} hwm ${kb('VmHWM').toFixed(0)} heap ${(m.heapUsed / 1048576).toFixed(0)} external ${(m.external / 1048576).toFixed(0)} ab ${(m.arrayBuffers / 1048576).toFixed(0)}`);
}, 1000);
const t0 = performance.now();
replay.start();
await replay.done;
const seconds = (performance.now() - t0) / 1000;
clearInterval(t);
console.log(`end hwm ${kb('VmHWM').toFixed(1)} MB, ${n} records in ${seconds.toFixed(2)} s (${(n / seconds / 1e6).toFixed(2)} M/s)`);
replay.close();
