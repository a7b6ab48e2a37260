// One measured run, in a process of its own so that its CPU time and RSS are
// its own: `node --import tsx bench/contender.ts '<task JSON>'` prints one
// JSON line, the result. Spawned by bench/run.ts.
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { Replay, type Message } from '../src/index.js';
import type { PlaybackOptions } from '../src/playback.js';
import { replayWithSetTimeout } from './baseline-settimeout.js';
import { statusKb } from './lib/harness.js';
import { datagramOf } from './lib/schedule.js';

/** CPU time measured over [fromNs, toNs] after the origin. */
export type CpuWindow = [fromNs: number, toNs: number];

/** Playback options as a task carries them in JSON: `startAt` as epoch ns in a decimal string. */
export type TaskPlayback = Pick<PlaybackOptions, 'loop' | 'loopDelay' | 'continuousTime' | 'maxGap' | 'rate' | 'delay'> & { startAt?: string };

export type Task =
  | { kind: 'native-udp'; log: string; port: number; busyWait?: number; spinMargin?: number; realtime?: boolean; cpuWindows?: CpuWindow[]; playback?: TaskPlayback }
  | { kind: 'js'; log: string; count: number; arrivals: string; cpuWindows?: CpuWindow[] }
  | { kind: 'settimeout'; schedule: string; port: number; cpuWindows?: CpuWindow[] }
  | { kind: 'pause'; log: string; port: number; pauseAtMs: number; pauseForMs: number }
  | { kind: 'throughput'; log: string; sink: 'null' | 'udp' | 'js-raw' | 'js-decoded'; port?: number }
  | { kind: 'memory'; log: string; sink: 'null' | 'js'; startups: number }
  | { kind: 'seek'; log: string; durationS: number; seeks: number }
  | { kind: 'drop'; log: string; port: number; blockMs: number; maxPendingBatches: number; spin: boolean };

export interface CpuSample {
  cpuUs: number;
  wallNs: number;
}

export interface Result {
  /** CLOCK_MONOTONIC ns at which schedule time 0 was due. */
  originNs?: number;
  wallNs: number;
  /** CPU time (user + system) of this process from start to the end of the replay. */
  cpuUs: number;
  windows?: CpuSample[];
  [extra: string]: unknown;
}

const now = () => Number(process.hrtime.bigint());
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function sleepUntil(ns: number): Promise<void> {
  const left = (ns - now()) / 1e6;
  if (left > 0) await sleepMs(left);
}

/** CPU time of this process in each window, windows in ns after `originNs`. */
async function measureWindows(originNs: number, windows: CpuWindow[] = []): Promise<CpuSample[]> {
  const samples: CpuSample[] = [];
  for (const [from, to] of windows) {
    await sleepUntil(originNs + from);
    const c0 = cpuNow();
    const t0 = now();
    await sleepUntil(originNs + to);
    samples.push({ cpuUs: cpuNow() - c0, wallNs: now() - t0 });
  }
  return samples;
}

/** The engine's origin: when log time 0 was due, from the anchor it publishes. */
async function engineOrigin(replay: Replay): Promise<number> {
  for (;;) {
    const anchor = replay.stats().anchor;
    if (anchor) return anchor.wallNs - anchor.logNs;
    await sleepMs(1);
  }
}

async function timed<T extends object>(run: () => Promise<T>): Promise<Result & T> {
  const c0 = cpuNow();
  const t0 = now();
  const extra = await run();
  return { wallNs: now() - t0, cpuUs: cpuNow() - c0, ...extra };
}

/** Play to the end: time, CPU, the engine's origin and the CPU windows after it. */
function playTimed(replay: Replay, cpuWindows?: CpuWindow[]) {
  return timed(async () => {
    replay.start();
    const originNs = await engineOrigin(replay);
    const windows = await measureWindows(originNs, cpuWindows);
    await replay.done;
    return { originNs, windows };
  });
}

async function nativeUdp(task: Extract<Task, { kind: 'native-udp' }>): Promise<Result> {
  const { startAt, ...playback } = task.playback ?? {};
  const replay = new Replay(task.log, {
    js: false,
    udp: { destination: `udp://127.0.0.1:${task.port}` },
    ...(task.busyWait !== undefined && { busyWait: task.busyWait }),
    ...(task.spinMargin !== undefined && { spinMargin: task.spinMargin }),
    ...(task.realtime !== undefined && { realtime: task.realtime }),
    ...playback,
    ...(startAt !== undefined && { startAt: BigInt(startAt) }),
  });
  // When start() was called: a start time must still be ahead of it.
  const startCalledNs = now();
  const result = await playTimed(replay, task.cpuWindows);
  const udp = replay.udpStats()!;
  const stats = replay.stats();
  replay.close();
  return {
    ...result,
    startCalledNs,
    sent: udp.datagrams,
    sendFailures: udp.sendFailures,
    late: stats.late,
    // The engine's own view (seconds): deadline → handover, and → send() return.
    handoverLateness: stats.handoverLateness,
    sendLateness: udp.lateness,
    spinMargin: stats.spinMargin,
    timingSlice: stats.timingSlice,
    realtime: stats.realtime,
  };
}

async function jsListener(task: Extract<Task, { kind: 'js' }>): Promise<Result> {
  // Arrival = the listener's own clock reading: lateness against the schedule
  // as the application sees it, the thread-safe-function hop included.
  const arrivals = new Float64Array(task.count).fill(NaN);
  const replay = new Replay(task.log);
  replay.on('message', (m) => {
    const t = now();
    arrivals[(m.payload as { i: number }).i] = t;
  });
  const result = await playTimed(replay, task.cpuWindows);
  replay.close();
  writeFileSync(task.arrivals, arrivals);
  return result;
}

async function setTimeoutBaseline(task: Extract<Task, { kind: 'settimeout' }>): Promise<Result> {
  const bytes = readFileSync(task.schedule);
  const timesNs = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  // Prepared in advance, as a careful user would: nothing but sends in the loop.
  const datagrams = Array.from(timesNs, (_, i) => datagramOf(i));
  const socket = await udpSocket();
  try {
    return await timed(async () => {
      const origin = now();
      const windowsDone = measureWindows(origin, task.cpuWindows);
      await replayWithSetTimeout(timesNs, datagrams, socket, task.port, origin);
      return { originNs: origin, windows: await windowsDone };
    });
  } finally {
    socket.close();
  }
}

/** CPU while paused: play, pause for a while, resume to the end. */
async function pauseCpu(task: Extract<Task, { kind: 'pause' }>): Promise<Result> {
  const replay = new Replay(task.log, { js: false, udp: { destination: `udp://127.0.0.1:${task.port}` } });
  const result = await timed(async () => {
    replay.start();
    await sleepMs(task.pauseAtMs);
    replay.pause();
    // Skip the first 100 ms: the threads park after their last record.
    await sleepMs(100);
    const c0 = cpuNow();
    const t0 = now();
    await sleepMs(task.pauseForMs - 100);
    const paused = { cpuUs: cpuNow() - c0, wallNs: now() - t0 };
    replay.start();
    await replay.done;
    return { paused };
  });
  replay.close();
  return result;
}

async function throughput(task: Extract<Task, { kind: 'throughput' }>): Promise<Result> {
  const js = task.sink === 'js-raw' || task.sink === 'js-decoded';
  const replay = new Replay(task.log, {
    speed: Infinity,
    js,
    decode: task.sink === 'js-decoded',
    ...(task.sink === 'udp' && { udp: { destination: `udp://127.0.0.1:${task.port}` } }),
  });
  let received = 0;
  if (js) replay.on('message', () => void received++);
  const result = await timed(async () => {
    replay.start();
    await replay.done;
    return {};
  });
  const delivered = replay.stats().delivered;
  const udp = replay.udpStats();
  replay.close();
  return { ...result, delivered, jsReceived: received, sent: udp?.datagrams, sendFailures: udp?.sendFailures };
}

/** Peak RSS over a whole replay at speed Infinity, then the time from start() to the first record. */
async function memory(task: Extract<Task, { kind: 'memory' }>): Promise<Result> {
  const rssBeforeKb = statusKb('VmRSS');
  const replay = new Replay(task.log, { speed: Infinity, js: task.sink === 'js', decode: false });
  let received = 0;
  if (task.sink === 'js') replay.on('message', () => void received++);
  const result = await timed(async () => {
    replay.start();
    await replay.done;
    return {};
  });
  const delivered = replay.stats().delivered;
  replay.close();
  const peakRssKb = statusKb('VmHWM');
  // After the whole-log replay, the start of the log is in the page cache:
  // this measures the engine's start-up, not a disk read.
  const firstJsNs: number[] = [];
  const firstEngineNs: number[] = [];
  for (let k = 0; k < task.startups; k++) {
    const replay = new Replay(task.log);
    const first = new Promise<number>((resolve) => replay.once('message', () => resolve(now())));
    const t0 = now();
    replay.start();
    firstJsNs.push((await first) - t0);
    firstEngineNs.push(replay.stats().anchor!.wallNs - t0);
    replay.close();
    await sleepMs(20);
  }
  return {
    ...result,
    delivered,
    jsReceived: received,
    firstJsNs,
    firstEngineNs,
    rssBeforeKb,
    peakRssKb,
    rssFileKb: statusKb('RssFile'),
  };
}

/**
 * Seek latency on a big log while it plays: seek() → the first record
 * delivered, in JS and at the engine (its deadline is its handover), and the
 * RSS before and after the seeks.
 */
async function seekLatency(task: Extract<Task, { kind: 'seek' }>): Promise<Result> {
  const replay = new Replay(task.log, { decode: false });
  let waiter: ((m: Message) => void) | undefined;
  replay.on('message', (m) => waiter?.(m));
  replay.start();
  await new Promise<Message>((resolve) => (waiter = resolve));
  // Once the ring is full: what the seeks add, not what filling it takes.
  await sleepMs(500);
  const rssBeforeKb = statusKb('VmRSS');
  const jsNs: number[] = [];
  const engineNs: number[] = [];
  // Spread over the log in a fixed shuffled order: each seek lands far from the last.
  for (let k = 0; k < task.seeks; k++) {
    const t = (((k * 7919) % task.seeks) + 0.5) * (task.durationS / task.seeks);
    const first = new Promise<Message>((resolve) => (waiter = resolve));
    const t0 = now();
    replay.seek(t);
    const m = await first;
    jsNs.push(now() - t0);
    engineNs.push(m.deadline - t0);
    if (m.elapsedTime < t) throw new Error(`seek(${t}) delivered ${m.elapsedTime} first`);
  }
  const rssAfterKb = statusKb('VmRSS');
  replay.close();
  return { wallNs: 0, cpuUs: 0, jsNs, engineNs, rssBeforeKb, rssAfterKb, peakRssKb: statusKb('VmHWM') };
}

/** A UDP sink beside a JS listener that blocks, with JS delivery under the drop policy. */
async function dropPolicy(task: Extract<Task, { kind: 'drop' }>): Promise<Result> {
  const replay = new Replay(task.log, {
    lag: 'drop',
    maxPendingBatches: task.maxPendingBatches,
    decode: false,
    udp: { destination: `udp://127.0.0.1:${task.port}` },
  });
  let js = 0;
  // Blocked either asleep (the policy alone) or busy (a core taken too).
  const asleep = new Int32Array(new SharedArrayBuffer(4));
  replay.on('message', () => {
    js++;
    if (!task.spin) Atomics.wait(asleep, 0, 0, task.blockMs);
    else {
      const end = now() + task.blockMs * 1e6;
      while (now() < end);
    }
  });
  const result = await playTimed(replay);
  const stats = replay.stats();
  const udp = replay.udpStats()!;
  replay.close();
  return { ...result, sent: udp.datagrams, jsReceived: js, dropped: stats.dropped, delivered: stats.delivered };
}

async function udpSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

async function run(task: Task): Promise<Result> {
  switch (task.kind) {
    case 'native-udp':
      return nativeUdp(task);
    case 'js':
      return jsListener(task);
    case 'settimeout':
      return setTimeoutBaseline(task);
    case 'pause':
      return pauseCpu(task);
    case 'throughput':
      return throughput(task);
    case 'memory':
      return memory(task);
    case 'seek':
      return seekLatency(task);
    case 'drop':
      return dropPolicy(task);
  }
}

const arg = process.argv[2];
if (arg === undefined) {
  console.error('usage: contender.ts <task JSON>');
  process.exit(2);
}
const result = await run(JSON.parse(arg) as Task);
process.stdout.write(JSON.stringify(result) + '\n');
