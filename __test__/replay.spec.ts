// Timing tests run serially: tolerances are for a noisy 2-core machine.
import test from 'ava';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { BufferData, MalformedRecordError, ReadDirectory, Replay, ReplayStateError, ScheduleBroadcasts, type Message } from '../src/index.js';
import { dataset, header, line, mayBeRealtime, sleep, tempDir, writeLargeLog, writeLog } from './helpers.js';

function collect(replay: Replay | ScheduleBroadcasts): { messages: Message[]; times: number[] } {
  const messages: Message[] = [];
  const times: number[] = [];
  replay.on('message', (m) => {
    messages.push(m);
    times.push(performance.now());
  });
  return { messages, times };
}

const ends = (replay: Replay | ScheduleBroadcasts) => new Promise<void>((resolve) => replay.once('end', resolve));

test.serial('the fixture plays in 1.0 s at speed 1, every message once, in order', async (t) => {
  const replay = new Replay(dataset);
  const { messages, times } = collect(replay);
  const t0 = performance.now();
  t.true(replay.start());
  t.false(replay.start());
  t.true(replay.isAlive());
  await replay.done;
  const elapsed = (performance.now() - t0) / 1000;
  t.true(Math.abs(elapsed - 1.0) < 0.1, `took ${elapsed} s`);
  t.is(messages.length, 20);
  t.deepEqual(messages.map((m) => m.elapsedTime), [...new ReadDirectoryTimes()]);
  // Each message arrives near its own time, not all at the end.
  t.true(Math.abs((times[15]! - t0) / 1000 - 0.6) < 0.08, `0.6 s message at ${(times[15]! - t0) / 1000}`);
  const stats = replay.stats();
  t.is(stats.delivered, 20);
  t.is(stats.lateness.count, 20);
  t.true(stats.lateness.p50 < 0.005, `p50 ${stats.lateness.p50}`);
  for (const m of messages) {
    t.true(m.lateness >= 0 && m.lateness < 0.05);
    t.true(Number.isFinite(m.deadline));
  }
  t.false(replay.isAlive());
  replay.close();
});

class ReadDirectoryTimes {
  *[Symbol.iterator]() {
    const r = new ReadDirectory(dataset);
    for (let m = r.read(); m; m = r.read()) yield m.elapsedTime;
  }
}

test.serial('speed 4 plays in about 0.25 s', async (t) => {
  const replay = new Replay(dataset, { speed: 4 });
  const { messages } = collect(replay);
  const t0 = performance.now();
  replay.start();
  await replay.done;
  const elapsed = (performance.now() - t0) / 1000;
  t.true(Math.abs(elapsed - 0.25) < 0.06, `took ${elapsed} s`);
  t.is(messages.length, 20);
  t.is(replay.speed, 4);
  replay.close();
});

test.serial('pause for 0.5 s then resume: 1.5 s in all, nothing lost or repeated, no stall', async (t) => {
  const replay = new Replay(dataset);
  const { messages, times } = collect(replay);
  const t0 = performance.now();
  replay.start();
  await sleep(450);
  t.true(replay.pause());
  t.false(replay.pause());
  t.false(replay.isAlive());
  const countAtPause = messages.length;
  await sleep(500);
  t.is(messages.length, countAtPause, 'nothing plays while paused');
  const resumedAt = performance.now();
  t.true(replay.start());
  await replay.done;
  const elapsed = (performance.now() - t0) / 1000;
  t.true(Math.abs(elapsed - 1.5) < 0.12, `took ${elapsed} s`);
  t.deepEqual(messages.map((m) => m.elapsedTime), [...new ReadDirectoryTimes()]);
  // Paused at ~0.45 s: the 0.5 s message is due ~0.05 s after resuming, not 0.5 s later.
  const next = times[countAtPause]!;
  t.true((next - resumedAt) / 1000 < 0.12, `first message after resume came ${(next - resumedAt) / 1000} s later`);
  replay.close();
});

test.serial('stop rewinds: start after stop, and after the end, replays from the first message', async (t) => {
  const replay = new Replay(dataset, { speed: 4 });
  const { messages } = collect(replay);
  replay.start();
  await sleep(100);
  t.true(replay.stop());
  t.false(replay.stop());
  await sleep(50);
  const before = messages.length;
  t.true(before > 0 && before < 20);
  replay.start();
  await replay.done;
  t.is(messages[before]!.elapsedTime, 0, 'restarted from the first message');
  t.is(messages.length - before, 20);
  t.true(replay.start(), 'start after the end plays again');
  await replay.done;
  t.is(messages.length - before, 40);
  t.is(messages[before + 20]!.elapsedTime, 0);
  replay.close();
});

test.serial('changing speed mid-run re-anchors without a jump', async (t) => {
  const replay = new Replay(dataset);
  const { messages } = collect(replay);
  const t0 = performance.now();
  replay.start();
  await sleep(400);
  replay.speed = 4;
  t.is(replay.speed, 4);
  await replay.done;
  const elapsed = (performance.now() - t0) / 1000;
  const expected = 0.4 + 0.6 / 4;
  t.true(Math.abs(elapsed - expected) < 0.08, `took ${elapsed} s, expected ${expected}`);
  t.is(messages.length, 20);
  t.throws(() => (replay.speed = 0), { instanceOf: RangeError });
  replay.speed = Infinity;
  replay.close();
});

test.serial('a million records at Infinity speed: each delivered once, in order', async (t) => {
  const dir = tempDir(t);
  const n = 1_000_000;
  const file = writeLargeLog(join(dir, 'Big.log'), n);
  const replay = new Replay(file, { speed: Infinity });
  let expected = 0;
  let outOfOrder = 0;
  replay.on('message', (m) => {
    if (m.payload !== expected) outOfOrder++;
    expected++;
  });
  const t0 = performance.now();
  replay.start();
  await replay.done;
  const seconds = (performance.now() - t0) / 1000;
  t.is(expected, n);
  t.is(outOfOrder, 0);
  t.log(`${n} records in ${seconds.toFixed(2)} s: ${(n / seconds / 1e6).toFixed(2)} M records/s (decoded)`);
  replay.close();
});

test.serial('async iteration yields every message and ends with the replay', async (t) => {
  const seen: number[] = [];
  const replay = new Replay(dataset, { speed: 8 });
  for await (const m of replay) seen.push(m.elapsedTime);
  t.is(seen.length, 20);
  t.deepEqual(seen, [...new ReadDirectoryTimes()]);
  replay.close();
  replay.close();
  t.throws(() => replay.start(), { instanceOf: ReplayStateError });
});

test.serial('Symbol.asyncDispose closes the replay', async (t) => {
  let replay: Replay;
  {
    await using r = new Replay(dataset, { speed: 8 });
    replay = r;
    r.start();
  }
  t.false(replay.isAlive());
  t.throws(() => replay.start(), { instanceOf: ReplayStateError, message: /closed/ });
});

test.serial('the message shape, with raw payload bytes on request', async (t) => {
  const replay = new Replay(join(dataset, 'UnitTestMessageB.log'), { speed: Infinity, rawPayload: true });
  const { messages } = collect(replay);
  replay.start();
  await replay.done;
  const m = messages[0]!;
  t.deepEqual(Object.keys(m).sort(), [
    'backfill',
    'deadline',
    'elapsedTime',
    'lateness',
    'pass',
    'payload',
    'payloadBytes',
    'topic',
    'type',
  ]);
  t.is(m.pass, 0);
  t.false(m.backfill);
  t.is(m.type, 'UnitTestMessageB');
  t.is(m.topic, '');
  t.deepEqual(m.payload, { timestamp: 0.1, data: 0.1, name: 'UnitTestMessageB' });
  t.is(Buffer.from(m.payloadBytes!).toString('hex').slice(0, 6), '83a974');
  t.is(m.lateness, 0);
  t.true(Number.isNaN(m.deadline));
  const undecoded = new Replay(join(dataset, 'UnitTestMessageB.log'), { speed: Infinity, decode: false });
  const got = collect(undecoded);
  undecoded.start();
  await undecoded.done;
  t.is(got.messages[0]!.payload, undefined);
});

test.serial('a malformed record mid-replay: records before it, then an error event, then a clean stop', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'Bad.log');
  const good = [0, 0.01, 0.02].map((tt, i) => line({ t: tt, payload: i })).join('');
  writeFileSync(file, header('Bad') + good + "     0.03000    ''          zz\n" + line({ t: 0.04, payload: 9 }));
  const replay = new Replay(file);
  const { messages } = collect(replay);
  const errors: Error[] = [];
  replay.on('error', (e) => errors.push(e));
  replay.start();
  const err = await replay.done.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.true(err instanceof MalformedRecordError);
  t.is(errors.length, 1);
  t.deepEqual(messages.map((m) => m.payload), [0, 1, 2]);
  const e = err as MalformedRecordError;
  t.is(e.line, 16);
  t.is(e.path, file);
  t.regex(e.snippet!, /zz/);
  t.false(replay.isAlive());
  // The iterator sees the same error.
  const again = new Replay(file);
  await t.throwsAsync(async () => {
    for await (const _ of again) void _;
  }, { instanceOf: MalformedRecordError });
  again.close();
  replay.close();
});

test.serial('a starved ring does not end the replay', async (t) => {
  let i = 0;
  const reader = {
    read: () => (i < 6 ? { elapsedTime: i * 0.05, type: 'S', payload: i++ } : null),
    isDataPending: () => i < 6,
    reset: () => void (i = 0),
  };
  const buffer = new BufferData(reader, { length: 2 });
  const scheduler = new ScheduleBroadcasts(buffer);
  const { messages } = collect(scheduler);
  const ended = ends(scheduler);
  scheduler.start(); // nothing buffered yet: starved from the start
  await sleep(20);
  t.is(messages.length, 0);
  buffer.start();
  await sleep(30);
  buffer.stop(); // the producer pauses with records 1, 2 buffered: the ring runs dry at 0.1 s
  await sleep(250);
  const starvedAt = messages.length;
  await sleep(100);
  t.true(scheduler.isAlive(), 'still running while starved');
  t.is(messages.length, starvedAt, 'nothing more to play until the producer resumes');
  t.true(starvedAt < 6);
  buffer.start();
  await ended;
  t.deepEqual(messages.map((m) => m.payload), [0, 1, 2, 3, 4, 5]);
  t.true(scheduler.stats().late >= 1, 'the record held up by the producer counts as late');
  scheduler.close();
});

test.serial('an error thrown by a JS reader reaches the replay as that error', async (t) => {
  let i = 0;
  const reader = {
    read: () => {
      if (i === 2) throw new SyntaxError('bad record 2');
      return { elapsedTime: i * 0.01, payload: i++ };
    },
    isDataPending: () => true,
    reset: () => void (i = 0),
  };
  const replay = new Replay(reader);
  const { messages } = collect(replay);
  replay.start();
  await t.throwsAsync(replay.done, { instanceOf: SyntaxError, message: 'bad record 2' });
  t.deepEqual(messages.map((m) => m.payload), [0, 1]);
  replay.close();
});

test.serial('stats().anchor gives every deadline: wallNs + (elapsed − logNs) / speed', async (t) => {
  const replay = new Replay(dataset, { speed: 2 });
  t.is(replay.stats().anchor, undefined, 'no anchor before the first record');
  const { messages } = collect(replay);
  replay.start();
  await replay.done;
  const anchor = replay.stats().anchor!;
  t.truthy(anchor);
  for (const m of messages) {
    const due = anchor.wallNs + (Math.round(m.elapsedTime * 1e9) - anchor.logNs) / 2;
    t.true(Math.abs(due - m.deadline) < 2, `deadline ${m.deadline}, anchor gives ${due}`);
  }
  replay.close();
  const fast = new Replay(dataset, { speed: Infinity });
  fast.start();
  await fast.done;
  t.is(fast.stats().anchor, undefined, 'no deadlines at infinite speed');
  fast.close();
});

test.serial('busyWait: 0 sleeps before every wait and still plays on time; bad values are refused', async (t) => {
  t.throws(() => new Replay(dataset, { busyWait: -0.001 }), { instanceOf: RangeError, message: /'busyWait'.*-0.001/ });
  t.throws(() => new Replay(dataset, { busyWait: Infinity }), { instanceOf: RangeError, message: /'busyWait'/ });
  t.throws(() => new Replay(dataset, { busyWait: '1' as unknown as number }), { instanceOf: TypeError, message: /'busyWait'/ });
  const replay = new Replay(dataset, { busyWait: 0 });
  const { messages, times } = collect(replay);
  replay.start();
  await replay.done;
  t.is(messages.length, 20);
  const span = times.at(-1)! - times[0]!;
  t.true(Math.abs(span - 1000) < 60, `first to last took ${span.toFixed(1)} ms`);
  replay.close();
});

test.serial('spinMargin: learned by default and published, or fixed; bad values are refused', async (t) => {
  t.throws(() => new Replay(dataset, { spinMargin: -1e-6 }), { instanceOf: RangeError, message: /'spinMargin'.*-0.000001/ });
  t.throws(() => new Replay(dataset, { spinMargin: 0.2 }), { message: /'spinMargin': must be from 0 to 0.1 s, got 0.2 s/ });
  t.throws(() => new Replay(dataset, { spinMargin: null as unknown as number }), { instanceOf: TypeError, message: /'spinMargin'/ });
  const learned = new Replay(dataset, { js: false });
  learned.start();
  await learned.done;
  // 19 sleeps of ~52 ms: the margin has moved from its start (200 µs), within 5 µs..2 ms.
  const margin = learned.stats().spinMargin;
  t.true(margin >= 5e-6 && margin <= 2e-3 && margin !== 200e-6, `learned margin ${margin} s`);
  learned.close();
  const fixed = new Replay(dataset, { js: false, spinMargin: 30e-6 });
  fixed.start();
  await fixed.done;
  t.is(fixed.stats().spinMargin, 30e-6);
  const { p99 } = fixed.stats().handoverLateness;
  t.true(p99 < 0.02, `handover p99 ${p99} s`);
  fixed.close();
});

test.serial('realtime: the scheduler waits in the real-time class when asked and permitted, by default when permitted on 2+ CPUs; refused, it fails and says why', async (t) => {
  t.throws(() => new Replay(dataset, { realtime: 'yes' as unknown as boolean }), { instanceOf: TypeError, message: /'realtime' must be true, false or 'auto', got 'yes'/ });
  const may = process.platform === 'linux' && mayBeRealtime();
  const playing = async (realtime: boolean | 'auto' | undefined, speed = 1) => {
    const replay = new Replay(dataset, { js: false, speed, ...(realtime !== undefined && { realtime }) });
    replay.start();
    await sleep(150);
    const stats = replay.stats();
    const done = replay.done.then(
      () => undefined,
      (err: Error) => err,
    );
    replay.close();
    return { realtime: stats.realtime, error: await done };
  };
  const required = await playing(true);
  if (may) {
    t.true(required.realtime, 'required and permitted');
    t.is(required.error, undefined);
  } else {
    t.false(required.realtime);
    t.regex(String(required.error?.message), /realtime.*CAP_SYS_NICE/);
  }
  t.is((await playing(undefined)).realtime, may && availableParallelism() >= 2, 'the default is auto');
  t.is((await playing('auto')).realtime, may && availableParallelism() >= 2);
  t.false((await playing(false)).realtime, 'off');
  t.false((await playing(true, Infinity)).realtime, 'nothing waits at speed Infinity');
});

test('an AbortSignal stops and closes the replay; done resolves', async (t) => {
  const controller = new AbortController();
  const replay = new Replay(dataset, { signal: controller.signal });
  const got: Message[] = [];
  replay.on('message', (m) => got.push(m));
  replay.start();
  await sleep(150);
  controller.abort();
  await replay.done;
  const seen = got.length;
  t.true(seen > 0 && seen < 20, `${seen} messages before the abort`);
  t.false(replay.isAlive());
  await sleep(200);
  t.is(got.length, seen, 'nothing after the abort');
  t.throws(() => replay.start(), { instanceOf: ReplayStateError });
  // Already aborted: closed from the start.
  const early = new Replay(dataset, { signal: AbortSignal.abort() });
  t.throws(() => early.start(), { instanceOf: ReplayStateError });
  t.throws(() => new Replay(dataset, { signal: {} as AbortSignal }), { instanceOf: TypeError, message: /'signal'/ });
});

test.serial('a playing replay nobody references plays on through garbage collection', async (t) => {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let count = 0;
  const ended = new Promise<void>((resolve) => {
    new Replay(dataset, { speed: 4 })
      .on('message', () => void count++)
      .on('end', resolve)
      .start();
  });
  for (let i = 0; i < 5; i++) {
    gc();
    await sleep(20);
  }
  await ended;
  t.is(count, 20);
});

test('unknown option keys are a TypeError naming the key, with a suggestion', (t) => {
  t.throws(() => new Replay(dataset, { sped: 5 } as never), {
    instanceOf: TypeError,
    message: /unknown option 'sped' in 'options' \(did you mean 'speed'\?\)/,
  });
  t.throws(() => new Replay(dataset, { udp: { destinaton: 'udp://127.0.0.1:9' } } as never), {
    instanceOf: TypeError,
    message: /unknown option 'destinaton' in 'udp' \(did you mean 'destination'\?\)/,
  });
  t.throws(() => new ReadDirectory(dataset, { minTim: 1 } as never), { instanceOf: TypeError, message: /'minTim'/ });
  t.throws(() => new BufferData(new ReadDirectory(dataset), { speed: 2 } as never), { instanceOf: TypeError, message: /'speed'/ });
  // Every documented option of Replay is accepted, and passed on to its parts.
  const replay = new Replay(dataset, {
    speed: 2,
    maxPendingBatches: 8,
    js: true,
    busyWait: 0,
    onError: 'skip',
    decode: true,
    rawPayload: false,
    length: 100,
    maxBytes: 1 << 20,
    minTime: 0,
    maxTime: 10,
    includeRaw: false,
    signal: new AbortController().signal,
  });
  t.is(replay.speed, 2);
  replay.close();
});

test('decoded payloads keep their own bytes: bins and strings of every record survive the records after them, small and large', async (t) => {
  // Small payloads are decoded from one scratch buffer that the next record
  // overwrites; a payload over 4 KiB is decoded in place.
  const path = join(tempDir(t), 'bins.log');
  const records = Array.from({ length: 300 }, (_, i) => ({
    t: i * 1e-6,
    topic: `/bin/${i % 3}`,
    payload: { i, name: `record ${i}`, blob: Buffer.alloc(i % 2 === 0 ? 16 : 6000, i & 0xff) },
  }));
  writeLog(path, records, 'Bins');
  const replay = new Replay(path, { speed: Infinity });
  const { messages } = collect(replay);
  replay.start();
  await replay.done;
  t.is(messages.length, records.length);
  messages.forEach((m, i) => {
    const p = m.payload as { i: number; name: string; blob: Uint8Array };
    t.is(p.i, i);
    t.is(p.name, `record ${i}`);
    t.is(p.blob.length, i % 2 === 0 ? 16 : 6000);
    t.true(p.blob.every((b) => b === (i & 0xff)), `record ${i}'s bytes were overwritten`);
  });
});
