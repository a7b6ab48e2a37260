// What the remote-control servers cost: `npm run bench:remote` (about 20 s).
//
//  1. Foxglove bridge at 1 kHz: how late each message reaches a FoxgloveClient
//     (receipt − the message's deadline), beside how late it reaches a plain
//     'message' listener of the same replay;
//  2. Foxglove bridge at Infinity speed: messages per second through to the
//     client, and what the bounded socket dropped;
//  3. HTTP control: round trips of GET /status, and of POST /pause while
//     playing at 1 kHz, with what arrived after the answer.
//
// Figures, not pass/fail: printed, and written to bench/results/remote.{json,md}.
// Client and server share one process and one event loop (the worst case for
// the client's figures). Uses the built addon: run `npm run build` first.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IWebSocket } from '@foxglove/ws-protocol';
import { WebSocket } from 'ws';
import { Replay, WriteFile, serveControl, serveFoxglove, type Message } from '../src/index.js';
import { root } from './lib/harness.js';
import { markdownTable } from './lib/report.js';
import { distribution, type Distribution } from './lib/stats.js';

const { FoxgloveClient } = createRequire(import.meta.url)('@foxglove/ws-protocol') as typeof import('@foxglove/ws-protocol');
const work = mkdtempSync(join(tmpdir(), 'netreplay-remote-'));
const now = () => Number(process.hrtime.bigint());

/** An MCL log of `n` records `step` s apart, payload { name, i, x, y, z }, by the project's own writer. */
function writeTickLog(n: number, step: number): string {
  const writer = new WriteFile(join(work, `Tick-${n}-${step}`), { type: 'Tick', created: '2026-01-01 00:00:00' });
  for (let i = 0; i < n; i++) writer.write(i * step, '/tick', { name: 'Tick', i, x: i * 0.5, y: -i, z: 'abcdefgh' });
  const [path] = writer.close();
  if (path === undefined) throw new Error('WriteFile wrote no file');
  return path;
}

async function foxgloveClient(url: string, onMessage: (i: number, at: number) => void) {
  const ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
  const client = new FoxgloveClient({ ws: ws as unknown as IWebSocket });
  const decoder = new TextDecoder();
  client.on('message', ({ data }) => onMessage((JSON.parse(decoder.decode(data as Uint8Array)) as { i: number }).i, now()));
  await new Promise<void>((resolve) => client.on('advertise', () => resolve()));
  client.subscribe(1);
  // Requests are handled in order: the answer means the subscription is in.
  await new Promise<void>((resolve) => {
    client.on('parameterValues', () => resolve());
    client.getParameters([], 'barrier');
  });
  return client;
}

const toUs = (d: Distribution) => ({ p50: d.p50 / 1e3, p90: d.p90 / 1e3, p99: d.p99 / 1e3, max: d.max / 1e3 });

async function latencyAt1kHz(n: number) {
  const replay = new Replay(writeTickLog(n, 0.001));
  const deadlines = new Float64Array(n).fill(NaN);
  const direct = new Float64Array(n).fill(NaN);
  replay.on('message', (m: Message) => {
    const i = (m.payload as { i: number }).i;
    deadlines[i] = m.deadline;
    direct[i] = m.lateness * 1e9;
  });
  const bridge = await serveFoxglove(replay, { port: 0, channels: [{ type: 'Tick', topic: '/tick' }] });
  const arrivals = new Float64Array(n).fill(NaN);
  let received = 0;
  const client = await foxgloveClient(bridge.url, (i, at) => {
    arrivals[i] = at;
    received++;
  });
  replay.start();
  await replay.done;
  await new Promise((r) => setTimeout(r, 200));
  const viaBridge = arrivals.map((a, i) => a - deadlines[i]!);
  const stats = bridge.stats();
  client.close();
  await bridge.close();
  replay.close();
  return { messages: n, received, dropped: stats.dropped, bridgeUs: toUs(distribution(viaBridge)), listenerUs: toUs(distribution(direct)) };
}

async function throughputAtInfinity(n: number) {
  const replay = new Replay(writeTickLog(n, 0.0001), { speed: Infinity });
  const bridge = await serveFoxglove(replay, { port: 0, channels: [{ type: 'Tick', topic: '/tick' }] });
  let received = 0;
  let last = 0;
  const client = await foxgloveClient(bridge.url, (_i, at) => {
    received++;
    last = at;
  });
  const t0 = now();
  replay.start();
  await replay.done;
  const replayS = (now() - t0) / 1e9;
  // Until the client has everything the bridge sent it.
  for (let quiet = 0; quiet < 10; ) {
    const before = received;
    await new Promise((r) => setTimeout(r, 50));
    quiet = received === before ? quiet + 1 : 0;
  }
  const stats = bridge.stats();
  client.close();
  await bridge.close();
  replay.close();
  const clientS = (last - t0) / 1e9;
  return { messages: n, received, dropped: stats.dropped, replaySeconds: replayS, clientSeconds: clientS, receivedPerSecond: received / clientS };
}

async function httpControl(rounds: number) {
  const replay = new Replay(writeTickLog(20_000, 0.001));
  let delivered = 0;
  replay.on('message', () => delivered++);
  const control = await serveControl(replay);
  const status: number[] = [];
  for (let k = 0; k < rounds; k++) {
    const t0 = now();
    await (await fetch(`${control.url}/status`)).json();
    status.push(now() - t0);
  }
  const pause: number[] = [];
  const after: number[] = [];
  replay.start();
  for (let k = 0; k < 20; k++) {
    await new Promise((r) => setTimeout(r, 50));
    const t0 = now();
    await (await fetch(`${control.url}/pause`, { method: 'POST' })).json();
    pause.push(now() - t0);
    const atAnswer = delivered;
    await new Promise((r) => setTimeout(r, 30));
    after.push(delivered - atAnswer);
    await fetch(`${control.url}/resume`, { method: 'POST' });
  }
  await control.close();
  replay.close();
  const ms = (d: Distribution) => ({ p50: d.p50 / 1e6, p90: d.p90 / 1e6, p99: d.p99 / 1e6, max: d.max / 1e6 });
  return { statusMs: ms(distribution(status)), pauseMs: ms(distribution(pause)), deliveredAfterPauseAnswer: Math.max(...after) };
}

const load = loadavg()[0]!;
const latency = await latencyAt1kHz(5000);
console.log('1 kHz through the bridge', latency);
const throughput = await throughputAtInfinity(50_000);
console.log('Infinity speed through the bridge', throughput);
const http = await httpControl(200);
console.log('HTTP control', http);
rmSync(work, { recursive: true, force: true });

const f = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
const md = [
  `# Remote control: bench/remote.ts`,
  '',
  `${new Date().toISOString()}, ${cpus().length} CPUs, load average ${load.toFixed(2)} at the start; client and server in one process.`,
  '',
  `## Foxglove bridge at 1 kHz (${latency.messages} messages of ~60 B)`,
  '',
  markdownTable(
    ['lateness, µs', 'p50', 'p90', 'p99', 'max'],
    [
      ['FoxgloveClient receipt − deadline', ...Object.values(latency.bridgeUs).map(f)],
      ["plain 'message' listener", ...Object.values(latency.listenerUs).map(f)],
    ],
  ),
  `received ${latency.received} of ${latency.messages}, dropped ${latency.dropped}`,
  '',
  `## Foxglove bridge at Infinity speed (${throughput.messages} messages)`,
  '',
  `received ${throughput.received}, dropped ${throughput.dropped} (8 MiB bound); the replay took ${f(throughput.replaySeconds)} s, ` +
    `the client had the last after ${f(throughput.clientSeconds)} s: ${throughput.receivedPerSecond.toFixed(0)} messages/s`,
  '',
  '## HTTP control (fetch, loopback)',
  '',
  markdownTable(
    ['round trip, ms', 'p50', 'p90', 'p99', 'max'],
    [
      ['GET /status', ...Object.values(http.statusMs).map(f)],
      ['POST /pause while playing 1 kHz', ...Object.values(http.pauseMs).map(f)],
    ],
  ),
  `messages delivered after a pause was answered: at most ${http.deliveredAfterPauseAnswer}`,
  '',
].join('\n');
const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'remote.json'), JSON.stringify({ load, latency, throughput, http }, null, 2) + '\n');
writeFileSync(join(outDir, 'remote.md'), md);
console.log(md);
