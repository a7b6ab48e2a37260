// Playback control through the TS API: windows, loops, steps, playUntil,
// virtual time, filters, remap, backfill, several inputs, progress and clock
// events, start times and delays. Timing bounds are loose (a noisy 2-core
// machine); exact timing is asserted on the virtual clock.
import test from 'ava';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { Unpackr } from 'msgpackr';
import { ReadFile, Replay, type Message, type RecordReader } from '../src/index.js';
import { sleep, tempDir, writeLog, type LogRecord } from './helpers.js';

type Seq = { seq: number };
const seqOf = (m: Message) => (m.payload as Seq).seq;

/** `n` records `step` s apart from 0, topics cycling through `topics`. */
function records(n: number, step: number, topics = ['a']): LogRecord[] {
  return Array.from({ length: n }, (_, seq) => ({ t: seq * step, topic: topics[seq % topics.length]!, payload: { seq } }));
}

function log(t: { teardown(fn: () => void): void }, recs: LogRecord[], type = 'Pose', name = 'Pose.log'): string {
  return writeLog(join(tempDir(t), name), recs, type);
}

function collect(replay: Replay): Message[] {
  const got: Message[] = [];
  replay.on('message', (m) => got.push(m));
  return got;
}

async function played(replay: Replay): Promise<Message[]> {
  const got = collect(replay);
  replay.start();
  await replay.done;
  return got;
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

test('startOffset, duration, until and limit bound what plays', async (t) => {
  const path = log(t, records(100, 0.01));
  const seqs = async (opts: object) => (await played(new Replay(path, { time: 'virtual', ...opts }))).map(seqOf);
  t.deepEqual(await seqs({ startOffset: 0.2, duration: 0.1 }), Array.from({ length: 11 }, (_, i) => 20 + i));
  t.deepEqual(await seqs({ until: 0.05 }), [0, 1, 2, 3, 4, 5]);
  t.deepEqual(await seqs({ limit: 3, startOffset: 0.5 }), [50, 51, 52]);
});

test('loop: n passes, continuous times and a loop event per seam', async (t) => {
  const path = log(t, records(5, 0.01));
  const replay = new Replay(path, { time: 'virtual', loop: 3, continuousTime: true, loopDelay: 0.005 });
  const loops: number[] = [];
  replay.on('loop', (n) => loops.push(n));
  const got = await played(replay);
  t.deepEqual(got.map(seqOf), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
  t.deepEqual(loops, [1, 2]);
  t.deepEqual([...new Set(got.map((m) => m.pass))], [0, 1, 2]);
  // Each pass is span 0.04 + gap 0.01 + loopDelay 0.005 = 0.055 s on.
  got.forEach((m, i) => t.true(Math.abs(m.elapsedTime - ((i % 5) * 0.01 + Math.floor(i / 5) * 0.055)) < 1e-9));
  const times = got.map((m) => m.elapsedTime);
  t.true(times.every((x, i) => i === 0 || x > times[i - 1]!), 'times never go backwards');
  // The seam on the virtual clock: one gap plus the loop delay, exactly.
  t.is(Math.round(got[5]!.deadline - got[4]!.deadline), 15_000_000);
});

test('loop: true plays until stopped; loop: 0 and loop: 1.5 are refused with the option named', async (t) => {
  const path = log(t, records(3, 0.001));
  const replay = new Replay(path, { loop: true, speed: Infinity });
  t.teardown(() => replay.close());
  const got = collect(replay);
  replay.start();
  await until('several loops', () => got.length >= 30);
  replay.stop();
  t.true(got.length >= 30);
  t.throws(() => new Replay(path, { loop: 0 }), { instanceOf: RangeError, message: /'loop'/ });
  t.throws(() => new Replay(path, { loop: 1.5 }), { message: /'loop'.*1\.5/ });
});

test('startPaused, step() and playUntil() deliver exactly what they say and resolve when paused', async (t) => {
  const path = log(t, records(50, 0.01));
  const replay = new Replay(path, { startPaused: true });
  t.teardown(() => replay.close());
  const got = collect(replay);
  let paused = 0;
  replay.on('paused', () => paused++);
  t.true(replay.start());
  t.is(replay.progress().state, 'paused');
  await sleep(50);
  t.is(got.length, 0, 'nothing before a step');
  await replay.step();
  await replay.step(2);
  t.deepEqual(got.map(seqOf), [0, 1, 2]);
  t.true(got.every((m) => Number.isNaN(m.deadline)), 'steps go out at once');
  const before = Date.now();
  await replay.playUntil(0.1);
  t.deepEqual(got.map(seqOf), Array.from({ length: 11 }, (_, i) => i));
  t.true(Date.now() - before >= 50, 'played at speed, not at once');
  t.is(replay.progress().state, 'paused');
  t.true(Math.abs(replay.progress().position! - 0.1) < 1e-9);
  t.is(paused, 3);
  // start() goes on from there: nothing skipped, nothing repeated.
  replay.start();
  await replay.done;
  t.deepEqual(got.map(seqOf), Array.from({ length: 50 }, (_, i) => i));
});

test('step while playing is a state error; step after the end resolves at once', async (t) => {
  const path = log(t, records(3, 0.2));
  const replay = new Replay(path);
  t.teardown(() => replay.close());
  replay.start();
  await t.throwsAsync(async () => replay.step(), { message: /pause\(\) first/ });
  replay.close();
  const done = new Replay(path, { speed: Infinity });
  await played(done);
  await done.step(1);
  t.pass();
});

test('burst while playing goes at once, then the timing goes on from its last message', async (t) => {
  const path = log(t, records(30, 0.05));
  const replay = new Replay(path);
  t.teardown(() => replay.close());
  const got: { m: Message; at: number }[] = [];
  replay.on('message', (m) => got.push({ m, at: performance.now() }));
  replay.start();
  await until('two messages', () => got.length >= 2);
  const burstCalled = Number(process.hrtime.bigint());
  await replay.burst(5);
  replay.speed = 2;
  const burstAt = () => got.findIndex((g) => Number.isNaN(g.m.deadline));
  await until('the burst and two more', () => burstAt() >= 0 && got.length >= burstAt() + 7);
  replay.pause();
  const burst = got.filter((g) => Number.isNaN(g.m.deadline));
  t.is(burst.length, 5);
  t.deepEqual(got.map((g) => seqOf(g.m)), got.map((_, i) => i), 'nothing skipped');
  const first = burstAt();
  // After it, deadlines are one gap apart at the new speed (50 ms / 2), and
  // the first is due after that gap, not at once to catch up: the timing
  // was re-anchored on the burst's last message. (Deadlines, not arrivals:
  // other tests of this file share the event loop.)
  const after = got.slice(first + 5).map((g) => g.m.deadline);
  t.true(Math.abs(after[1]! - after[0]! - 25e6) < 1e6, `deadlines ${(after[1]! - after[0]!) / 1e6} ms apart`);
  // On the old schedule the next would be due 250 ms or more after the burst.
  const firstDue = (after[0]! - burstCalled) / 1e6;
  t.true(firstDue > 20 && firstDue < 150, `the next message due ${firstDue} ms after burst()`);
});

test('virtual time: advanceTo and advanceBy move the clock by hand, deadlines exact and lateness 0', async (t) => {
  const path = log(t, records(20, 0.1));
  const replay = new Replay(path, { time: 'virtual' });
  t.teardown(() => replay.close());
  const got = collect(replay);
  await replay.advanceTo(0.25);
  t.deepEqual(got.map(seqOf), [0, 1, 2]);
  await replay.advanceBy(0.25);
  t.deepEqual(got.map(seqOf), [0, 1, 2, 3, 4, 5]);
  t.deepEqual(got.map((m) => Math.round(m.deadline / 1e6)), [0, 100, 200, 300, 400, 500]);
  t.true(got.every((m) => m.lateness === 0));
  t.is(replay.progress().position, 0.5);
  const real = new Replay(path);
  t.teardown(() => real.close());
  await t.throwsAsync(real.advanceBy(1), { message: /time: 'virtual'/ });
});

test('filters run before the ring: topics and types by name or RegExp, excludes win, remap renames', async (t) => {
  const path = log(t, records(12, 0.01, ['/imu', '/gps', '/cam/l', '/cam/r']));
  const got = await played(
    new Replay(path, {
      time: 'virtual',
      topics: ['/imu', /^\/cam/],
      excludeTopics: [/r$/],
      remap: new Map([['/imu', '/sensors/imu']]),
    }),
  );
  t.deepEqual(got.map((m) => m.topic), ['/sensors/imu', '/cam/l', '/sensors/imu', '/cam/l', '/sensors/imu', '/cam/l']);
  const none = await played(new Replay(path, { time: 'virtual', excludeTypes: ['Pose'] }));
  t.is(none.length, 0);
  const typed = await played(new Replay(path, { time: 'virtual', types: [/^po/i], remap: { '/gps': '/fix' } }));
  t.is(typed.length, 12);
  t.true(typed.some((m) => m.topic === '/fix'));
  t.throws(() => new Replay(path, { topics: [/a(?=b)/] }), { message: /'topics'.*a\(\?=b\)/ });
  t.throws(() => new Replay(path, { topics: 'a' as never }), { instanceOf: TypeError, message: /'topics'/ });
});

test('backfill: the last message per topic before a start offset and a seek, marked, filters applied', async (t) => {
  const path = log(t, records(12, 0.01, ['a', 'b', 'c']));
  const got = await played(new Replay(path, { time: 'virtual', startOffset: 0.055, backfill: true, excludeTopics: ['b'] }));
  t.deepEqual(
    got.map((m) => [seqOf(m), m.backfill]),
    [
      [3, true],
      [5, true],
      [6, false],
      [8, false],
      [9, false],
      [11, false],
    ],
  );
  const replay = new Replay(path, { time: 'virtual', backfill: true, startPaused: true });
  t.teardown(() => replay.close());
  const seen = collect(replay);
  replay.start();
  replay.seek(0.075);
  await replay.step();
  t.deepEqual(seen.map((m) => [seqOf(m), m.backfill]), [
    [5, true],
    [6, true],
    [7, true],
    [8, false],
  ]);
});

test('several inputs merge in time, ties by input order; a JS reader can be one of them', async (t) => {
  const dir = tempDir(t);
  const a = writeLog(join(dir, 'A.log'), records(5, 0.02).map((r) => ({ ...r, topic: 'A' })), 'A');
  const b = writeLog(join(dir, 'B.log'), records(5, 0.02).map((r) => ({ ...r, t: r.t + 0.01, topic: 'B' })), 'B');
  const c = writeLog(join(dir, 'C.log'), records(2, 0.04).map((r) => ({ ...r, topic: 'C' })), 'C');
  const got = await played(new Replay([a, b, new ReadFile(c)], { time: 'virtual' }));
  t.is(got.map((m) => m.topic).join(''), 'ACBABACBABAB');
  t.deepEqual(got.map((m) => m.type), got.map((m) => m.topic));
  // With a reader written in JS, the merge runs in JS and keeps the same order.
  const items = records(3, 0.015).map((r) => ({ elapsedTime: r.t, topic: 'J', type: 'J', payload: r.payload }));
  let i = 0;
  const js: RecordReader = {
    read: () => items[i++] ?? null,
    isDataPending: () => i < items.length,
    reset: () => {
      i = 0;
    },
  };
  const mixed = await played(new Replay([a, js], { time: 'virtual' }));
  t.is(mixed.map((m) => m.topic).join(''), 'AJJAJAAA');
  t.throws(() => new Replay([]), { instanceOf: TypeError, message: /empty array/ });
});

test('a reader written in JS loops, stops at until and is filtered through the same passes', async (t) => {
  const items = records(6, 0.01, ['x', 'y']).map((r) => ({ elapsedTime: r.t, topic: r.topic, payload: r.payload }));
  let i = 0;
  const js: RecordReader = {
    read: () => items[i++] ?? null,
    isDataPending: () => i < items.length,
    reset: () => {
      i = 0;
    },
  };
  const got = await played(new Replay(js, { time: 'virtual', loop: 2, until: 0.035, topics: ['x'] }));
  t.deepEqual(got.map(seqOf), [0, 2, 0, 2]);
  t.deepEqual(got.map((m) => m.pass), [0, 0, 1, 1]);
  t.throws(() => new Replay(js, { startOffset: 1 }), { message: /'startOffset'/ });
});

test('progress events come at their interval through a sparse stretch, with position and fraction', async (t) => {
  const path = log(t, [
    { t: 0, topic: 'a', payload: { seq: 0 } },
    { t: 1.2, topic: 'a', payload: { seq: 1 } },
  ]);
  const replay = new Replay(path, { progressInterval: 0.1 });
  t.teardown(() => replay.close());
  const reports: ReturnType<Replay['progress']>[] = [];
  replay.on('progress', (p) => reports.push(p));
  replay.start();
  await replay.done;
  const during = reports.filter((p) => p.state === 'playing');
  t.true(during.length >= 5, `${during.length} reports in a 1.2 s gap`);
  const positions = during.map((p) => p.position!);
  t.true(positions.every((x, k) => k === 0 || x >= positions[k - 1]!), 'position moves forward');
  t.true(positions.some((x) => x > 0.3 && x < 1.2), 'position moves inside the gap');
  t.true(during.some((p) => p.achievedSpeed !== null && p.achievedSpeed > 0.5 && p.achievedSpeed < 1.5));
  t.is(reports.at(-1)!.state, 'ended');
  t.is(reports.at(-1)!.fraction, 1);
  t.throws(() => new Replay(path, { progressInterval: 0.01 }), { message: /'progressInterval'/ });
});

test('clock ticks: events with logical time, and datagrams a real socket receives', async (t) => {
  const path = log(t, records(11, 0.05));
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.teardown(() => socket.close());
  const datagrams: unknown[] = [];
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  socket.on('message', (buf) => datagrams.push(unpackr.unpack(buf)));
  const port = socket.address().port;
  const replay = new Replay(path, { speed: 2, clock: { hz: 20, destination: `udp://127.0.0.1:${port}` } });
  const ticks: number[] = [];
  replay.on('clock', (time) => ticks.push(time));
  await played(replay);
  await sleep(50);
  // 0.5 s of log at speed 2 is 0.25 s: about 5 ticks of 50 ms, each 0.1 s of log on.
  t.true(ticks.length >= 3 && ticks.length <= 6, `${ticks.length} ticks`);
  t.true(ticks.every((x, k) => k === 0 || x > ticks[k - 1]!));
  for (let k = 1; k < ticks.length; k++) t.true(Math.abs(ticks[k]! - ticks[k - 1]! - 0.1) < 0.03, `tick step ${ticks[k]! - ticks[k - 1]!}`);
  t.is(datagrams.length, ticks.length);
  const [topic, payload] = datagrams[0] as [string, { name: string; time: number; timeNs: number }];
  t.is(topic, '/clock');
  t.is(payload.name, 'Clock');
  t.true(Math.abs(payload.time - ticks[0]!) < 1e-9);
  t.throws(() => new Replay(path, { clock: { hz: 0 } }), { message: /'clock'/ });
});

test('startAt: a Date in the near future is met; one far ahead can be stopped; one in the past starts at once, late', async (t) => {
  const path = log(t, records(3, 0.01));
  const at = new Date(Date.now() + 300);
  const replay = new Replay(path, { startAt: at });
  const arrivals: number[] = [];
  replay.on('message', () => arrivals.push(Date.now()));
  replay.start();
  t.is(replay.progress().state, 'delayed');
  await replay.done;
  t.true(Math.abs(arrivals[0]! - at.getTime()) < 60, `first message ${arrivals[0]! - at.getTime()} ms from startAt`);

  const far = new Replay(path, { startAt: BigInt(Date.now() + 3_600_000) * 1_000_000n });
  const got = collect(far);
  far.start();
  await sleep(50);
  t.true(far.stop());
  t.is(got.length, 0);
  far.close();

  const past = await played(new Replay(path, { startAt: new Date(Date.now() - 1000) }));
  t.true(past.every((m) => m.lateness > 0.9), 'counted late, caught up at once');
  t.throws(() => new Replay(path, { startAt: new Date(Date.now() + 1000), startPaused: true }), { message: /'startPaused'/ });
  t.throws(() => new Replay(path, { startAt: 5 as never }), { instanceOf: TypeError, message: /'startAt'/ });
});

test('delay: waited before the first message, and a pause during it keeps what is left', async (t) => {
  const path = log(t, records(3, 0.001));
  const replay = new Replay(path, { delay: 0.6 });
  t.teardown(() => replay.close());
  const got = collect(replay);
  const started = performance.now();
  replay.start();
  await sleep(100);
  t.is(replay.progress().state, 'delayed');
  replay.pause();
  const left = 600 - (performance.now() - started);
  await sleep(300);
  t.is(got.length, 0, 'nothing during the delay or the pause');
  const resumed = performance.now();
  replay.start();
  await replay.done;
  const waited = performance.now() - resumed;
  t.true(waited >= left - 40 && waited < left + 300, `${waited} ms after the resume (${left} left)`);
});

test('maxGap and a fixed rate reshape the timeline', async (t) => {
  const path = log(t, [
    { t: 0, topic: 'a', payload: { seq: 0 } },
    { t: 0.001, topic: 'a', payload: { seq: 1 } },
    { t: 100, topic: 'a', payload: { seq: 2 } },
  ]);
  const capped = await played(new Replay(path, { time: 'virtual', maxGap: 0.01 }));
  t.deepEqual(capped.map((m) => Math.round(m.deadline / 1e3)), [0, 1_000, 11_000]);
  t.is(capped[2]!.elapsedTime, 100, 'the logged time is reported');
  const rated = await played(new Replay(path, { time: 'virtual', rate: { messagesPerSecond: 1000 } }));
  t.deepEqual(rated.map((m) => Math.round(m.deadline / 1e3)), [0, 1_000, 2_000]);
  t.throws(() => new Replay(path, { rate: { messagesPerSecond: 10 }, maxGap: 1 }), { message: /'maxGap'.*'rate'/ });
  t.throws(() => new Replay(path, { rate: { messagesPerSecond: -1 } }), { message: /rate\.messagesPerSecond/ });
  t.throws(() => new Replay(path, { rate: { messagesPerSecond: 10 }, speed: 2 }), { message: /'speed': conflicts with 'rate'/ });
  t.throws(() => new Replay(path, { rate: { pps: 1 } as never }), { instanceOf: TypeError, message: /'pps'/ });
  // Real time: 20 messages at 200 per second take about 0.1 s.
  const many = log(t, records(20, 1), 'Pose', 'Many.log');
  const started = Date.now();
  await played(new Replay(many, { rate: { messagesPerSecond: 200 } }));
  const took = Date.now() - started;
  t.true(took >= 80 && took < 1000, `${took} ms`);
});

test('a seek inside a loop stays in its pass', async (t) => {
  const path = log(t, records(10, 0.01));
  const replay = new Replay(path, { time: 'virtual', loop: 3, startPaused: true });
  t.teardown(() => replay.close());
  const got = collect(replay);
  replay.start();
  await replay.step(12);
  replay.seek(0.05);
  replay.start();
  await replay.done;
  t.deepEqual(
    got.slice(12).map((m) => [m.pass, seqOf(m)]),
    [...[5, 6, 7, 8, 9].map((s) => [1, s]), ...Array.from({ length: 10 }, (_, s) => [2, s])],
  );
});
