// The native Player behind Replay: seek, the lag policy of its sinks, and
// lateness measured where JS receives messages.
import test from 'ava';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Listener, ReadFile, Replay, type Message, type RecordReader } from '../src/index.js';
import { sleep, tempDir, writeLog, type LogRecord } from './helpers.js';

type Seq = { seq: number };

/** Records every 10 ms from 0 (payload `{ seq }`), with a tie of three at 0.5 s. */
function records(n = 100): LogRecord[] {
  return Array.from({ length: n }, (_, seq) => ({
    t: seq >= 50 && seq <= 52 ? 0.5 : seq * 0.01,
    topic: `t${seq % 3}`,
    payload: { seq },
  }));
}

function logWithTie(t: { teardown(fn: () => void): void }, n = 100): string {
  return writeLog(join(tempDir(t), 'Tie.log'), records(n), 'Tie');
}

const seqOf = (m: Message) => (m.payload as Seq).seq;
const nowNs = () => Number(process.hrtime.bigint());

/** Collect messages; `after(mark)` gives those that arrived after the mark. */
function collector(replay: Replay) {
  const got: { m: Message; at: number }[] = [];
  replay.on('message', (m) => got.push({ m, at: got.length }));
  return {
    get count() {
      return got.length;
    },
    since: (mark: number) => got.slice(mark).map((g) => g.m),
    all: () => got.map((g) => g.m),
  };
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

test('seek while playing: the next message is the first at or after t, due at the seek, and timing goes on from there', async (t) => {
  const replay = new Replay(logWithTie(t));
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.start();
  await until('a few messages', () => got.count >= 3);
  const mark = got.count;
  const called = nowNs();
  replay.seek(0.495);
  await until('messages after the seek', () => got.since(mark).filter((m) => m.elapsedTime >= 0.495).length >= 5);
  // Messages of the old position still on their way were dropped by the seek.
  const after = got.since(mark).filter((m) => m.elapsedTime >= 0.495);
  t.true(got.since(mark).every((m) => m.elapsedTime >= 0.495), 'nothing of the old position after seek()');
  t.deepEqual(after.slice(0, 5).map(seqOf), [50, 51, 52, 53, 54], 'the first of the tie, then its ties in order');
  const due = after[0]!.deadline;
  t.true(due >= called && due - called < 50e6, `first due ${(due - called) / 1e6} ms after the call`);
  t.is(after[3]!.deadline - due, 30e6, 'the next is due 30 ms of log later');
  replay.stop();
});

test('seek while paused moves the position and stays paused', async (t) => {
  const replay = new Replay(logWithTie(t));
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.start();
  await until('a message', () => got.count >= 1);
  replay.pause();
  await sleep(30);
  const mark = got.count;
  replay.seek(0.7);
  await sleep(80);
  t.is(got.count, mark, 'nothing while paused');
  t.false(replay.isAlive());
  replay.start();
  await until('messages after the resume', () => got.count >= mark + 2);
  t.deepEqual(got.since(mark).slice(0, 2).map(seqOf), [70, 71]);
});

test('seek before the first message and past the last clamps to the ends; seek while idle plays from there', async (t) => {
  const path = logWithTie(t, 60);
  const replay = new Replay(path, { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.seek(-100);
  replay.start();
  await replay.done;
  t.deepEqual(got.all().map(seqOf), [...Array(60).keys()]);
  let mark = got.count;
  replay.seek(1e6);
  replay.start();
  await replay.done;
  t.deepEqual(got.since(mark).map(seqOf), [59], 'past the end: the last message');
  mark = got.count;
  replay.seek(-Infinity);
  replay.start();
  await replay.done;
  t.is(got.since(mark).length, 60, '-Infinity clamps to the start');
});

test('seek then stop then start plays from the beginning', async (t) => {
  const replay = new Replay(logWithTie(t, 30), { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.seek(0.2);
  replay.stop();
  replay.start();
  await replay.done;
  t.deepEqual(got.all().map(seqOf), [...Array(30).keys()]);
});

test('seek takes a number of seconds: NaN or a non-number is a TypeError', (t) => {
  const replay = new Replay(logWithTie(t, 5));
  t.teardown(() => replay.close());
  t.throws(() => replay.seek(NaN), { instanceOf: TypeError, message: /seek: 'time' must be a number of seconds, got NaN/ });
  t.throws(() => replay.seek('1' as unknown as number), { instanceOf: TypeError, message: /got string/ });
  replay.close();
  t.throws(() => replay.seek(1), { message: /closed/ });
});

test('seek across a split-set boundary: the part holding t is read from there', async (t) => {
  const dir = tempDir(t);
  const all = records(90);
  for (let part = 0; part < 3; part++) {
    writeLog(join(dir, `Split_00${part}.log`), all.slice(part * 30, part * 30 + 30), part === 0 ? 'Tie' : undefined);
  }
  const replay = new Replay(join(dir, 'Split'), { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.seek(0.655); // in part 2 (records 60..89), between 0.65 and 0.66
  replay.start();
  await replay.done;
  t.deepEqual(got.all().map(seqOf), [...Array(90).keys()].slice(66));
});

test('seek across a directory merge: ties keep file-name order', async (t) => {
  const dir = join(tempDir(t), 'rec');
  mkdirSync(dir);
  const times = [0, 0.1, 0.2, 0.3, 0.3, 0.4];
  writeLog(join(dir, 'A.log'), times.map((t, i) => ({ t, payload: { seq: i * 10 } })), 'A');
  writeLog(join(dir, 'B.log'), times.map((t, i) => ({ t: t + 0.05, payload: { seq: i * 10 + 1 } })), 'B');
  writeLog(join(dir, 'C.log'), [{ t: 0.3, payload: { seq: 2 } }], 'C');
  const replay = new Replay(dir, { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.seek(0.3);
  replay.start();
  await replay.done;
  // 0.3: A's two, then C's (file order, then record order), 0.35: B's two...
  t.deepEqual(got.all().map(seqOf), [30, 40, 2, 31, 41, 50, 51]);
  t.deepEqual(
    got.all().map((m) => m.type),
    ['A', 'A', 'C', 'B', 'B', 'A', 'B'],
  );
});

test('seek with a reader written in JS: read from its start to t, clamped as a native reader', async (t) => {
  const all = records(40).map((r) => ({ elapsedTime: r.t, topic: r.topic!, payload: r.payload, type: 'Js' }));
  let pos = 0;
  const reader: RecordReader = {
    read: () => all[pos++] ?? null,
    isDataPending: () => pos < all.length,
    reset: () => {
      pos = 0;
    },
  };
  const replay = new Replay(reader, { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.seek(0.255);
  replay.start();
  await replay.done;
  t.deepEqual(got.all().map(seqOf), [...Array(40).keys()].slice(26));
  const mark = got.count;
  replay.seek(100);
  replay.start();
  await replay.done;
  t.deepEqual(got.since(mark).map(seqOf), [39]);
});

test('a ReadFile given to Replay seeks natively too', async (t) => {
  const replay = new Replay(new ReadFile(logWithTie(t, 20)), { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.seek(0.1);
  replay.start();
  await replay.done;
  t.deepEqual(got.all().map(seqOf), [...Array(20).keys()].slice(10));
});

/** Block the event loop for `ms` (a listener that does heavy work). */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

function tenKilohertz(t: { teardown(fn: () => void): void }, n: number): string {
  const recs = Array.from({ length: n }, (_, seq) => ({ t: seq * 0.0001, payload: { seq } }));
  return writeLog(join(tempDir(t), 'Fast.log'), recs, 'Fast');
}

test.serial("lag 'drop': a blocking JS listener at 10 kHz does not delay the UDP sink, and every message is delivered or counted", async (t) => {
  const n = 10_000;
  const listener = new Listener('udp://127.0.0.1:0');
  t.teardown(() => listener.close());
  const replay = new Replay(tenKilohertz(t, n), {
    lag: 'drop',
    maxPendingBatches: 4,
    udp: { destination: listener.urls[0]! },
  });
  t.teardown(() => replay.close());
  let js = 0;
  replay.on('message', () => {
    js++;
    block(2);
  });
  replay.start();
  await replay.done;
  const stats = replay.stats();
  const udp = replay.udpStats()!;
  t.log(`JS took ${js}, dropped ${stats.dropped}; UDP send lateness p50 ${udp.lateness.p50 * 1e6} µs p99 ${udp.lateness.p99 * 1e6} µs max ${udp.lateness.max * 1e3} ms`);
  t.is(js + stats.dropped, n, 'each message delivered to JS or counted as dropped');
  t.true(stats.dropped > n / 2, `most dropped: ${stats.dropped}`);
  t.is(udp.recordsSent, n, 'UDP sent every record');
  t.true(udp.lateness.p99 < 0.02, `UDP send lateness p99 ${udp.lateness.p99 * 1e3} ms`);
  await until('all datagrams received', () => listener.stats().datagrams >= n, 5000).catch(() => {});
  t.is(listener.stats().datagrams, n);
});

test.serial("lag 'wait' (the default): a listener slower than the replay slows it down, UDP included, once JS holds 8192 messages; nothing is dropped", async (t) => {
  const n = 16_000;
  const listener = new Listener('udp://127.0.0.1:0');
  t.teardown(() => listener.close());
  const replay = new Replay(tenKilohertz(t, n), { udp: { destination: listener.urls[0]! } });
  t.teardown(() => replay.close());
  let js = 0;
  replay.on('message', () => {
    js++;
    block(0.25); // 4 kHz at most, the replay is at 10 kHz
  });
  replay.start();
  await replay.done;
  const stats = replay.stats();
  t.is(js, n);
  t.is(stats.dropped, 0);
  t.true(replay.udpStats()!.lateness.max > 0.1, `UDP waited for JS: max ${replay.udpStats()!.lateness.max} s`);
});

test('lateness is measured where JS receives a message; the engine handover lateness is reported beside it', async (t) => {
  const replay = new Replay(tenKilohertz(t, 200).replace('Fast.log', 'Fast.log'));
  t.teardown(() => replay.close());
  const seen: Message[] = [];
  replay.on('message', (m) => {
    seen.push(m);
    if (seen.length === 100) block(50);
  });
  replay.start();
  await replay.done;
  const s = replay.stats();
  t.is(s.lateness.count, 200);
  t.is(s.handoverLateness.count, 200);
  // The 50 ms block delays arrivals in JS, not the engine's handover (which
  // stays ahead until JS's pending bound is reached).
  t.true(s.lateness.max >= 0.03, `JS lateness max ${s.lateness.max}`);
  t.true(s.lateness.max > s.handoverLateness.max, `JS ${s.lateness.max} vs handover ${s.handoverLateness.max}`);
  t.true(seen.every((m) => m.lateness >= 0), 'per-message lateness is at arrival, never negative');
  t.true(Math.max(...seen.map((m) => m.lateness)) >= 0.03);
  t.is(replay.stats().dropped, 0);
});

test("lag takes 'wait' or 'drop'", (t) => {
  t.throws(() => new Replay(tenKilohertz(t, 1), { lag: 'skip' as 'drop' }), { message: /'lag'.* must be 'wait' or 'drop', got 'skip'/ });
  t.throws(() => new Replay(tenKilohertz(t, 1), { lag: 1 as unknown as 'drop' }), { instanceOf: TypeError });
  t.throws(() => new Replay(tenKilohertz(t, 1), { udp: { destination: 'udp://127.0.0.1:9', lag: 'later' as 'drop' } }), {
    message: /'udp.lag'.* must be 'wait' or 'drop'/,
  });
});

test('pause() and start() after the engine reached the end, before JS saw it, do not play the log again', async (t) => {
  const replay = new Replay(logWithTie(t, 100), { speed: Infinity });
  t.teardown(() => replay.close());
  const got = collector(replay);
  replay.start();
  block(50); // the engine plays to the end meanwhile; its batches wait for JS
  t.true(replay.pause());
  t.true(replay.start());
  await replay.done;
  t.deepEqual(got.all().map(seqOf), [...Array(100).keys()], 'each message once, in order');
  // Seen the end: start() plays again from the start.
  replay.start();
  await replay.done;
  t.is(got.count, 200);
});
