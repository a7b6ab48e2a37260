import test from 'ava';
import { join } from 'node:path';
import { BufferData, ReadDirectory, ReadFile, ScheduleBroadcasts, ReplayStateError, type LoggedMessage } from '../src/index.js';
import { dataset, sleep, tempDir, writeLog } from './helpers.js';

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(2);
  }
}

function drain(buffer: BufferData): LoggedMessage[] {
  const out: LoggedMessage[] = [];
  for (let m = buffer.queue.get(); m !== null; m = buffer.queue.get()) out.push(m);
  return out;
}

test('fills to length, latches isReady, and hands records out of its queue', async (t) => {
  const buffer = new BufferData(new ReadDirectory(dataset), { length: 5 });
  t.false(buffer.isDataPending());
  t.false(buffer.isReady());
  t.is(buffer.queue.capacity, 5);
  t.true(buffer.start());
  t.false(buffer.start(), 'already buffering');
  await until(() => buffer.isReady());
  t.is(buffer.queue.size, 5);
  t.true(buffer.isDataPending());
  t.is(buffer.queue.get()!.elapsedTime, 0);
  await until(() => buffer.queue.size === 5);
  t.true(buffer.isReady(), 'latched');
  t.true(buffer.stop());
  t.false(buffer.stop());
  t.false(buffer.isAlive());
});

test('stop/start resumes without loss or repetition; reset rewinds', async (t) => {
  const buffer = new BufferData(new ReadDirectory(dataset), { length: 3 });
  const got: LoggedMessage[] = [];
  while (!buffer.queue.ended) {
    buffer.start();
    await sleep(5);
    buffer.stop(); // stops while the ring is full and a record is in hand
    got.push(...drain(buffer));
  }
  t.is(got.length, 20);
  t.deepEqual(got.map((m) => m.payload), drainReader(new ReadDirectory(dataset)));
  t.false(buffer.isDataPending());
  buffer.reset();
  t.false(buffer.isReady());
  t.false(buffer.queue.ended);
  buffer.start();
  await until(() => buffer.isReady());
  t.is(buffer.queue.get()!.elapsedTime, 0, 'starts again from the first record');
  buffer.stop();
});

function drainReader(reader: { read(): LoggedMessage | null }): unknown[] {
  const out: unknown[] = [];
  for (let m = reader.read(); m !== null; m = reader.read()) out.push(m.payload);
  return out;
}

test('readers written in JS are duck-typed; what is missing is named', async (t) => {
  let i = 0;
  const reader = {
    read: () => (i < 7 ? { elapsedTime: i / 10, topic: 'js', type: 'Js', payload: { i: i++ } } : null),
    isDataPending: () => i < 7,
    reset: () => {
      i = 0;
    },
  };
  const buffer = new BufferData(reader, { length: 4 });
  const got: LoggedMessage[] = [];
  buffer.start();
  while (!buffer.queue.ended) {
    await sleep(3);
    got.push(...drain(buffer));
  }
  t.deepEqual(got.map((m) => (m.payload as { i: number }).i), [0, 1, 2, 3, 4, 5, 6]);
  t.deepEqual(got.map((m) => m.type), Array(7).fill('Js'));
  t.true(buffer.isReady());
  t.false(buffer.isDataPending());
  t.throws(() => new BufferData({ read() {}, reset() {} } as never), { instanceOf: TypeError, message: /isDataPending\(\)/ });
  t.throws(() => new BufferData({ isDataPending() {}, reset() {} } as never), { instanceOf: TypeError, message: /read\(\)/ });
  t.throws(() => new BufferData(null as never), { instanceOf: TypeError, message: /reader/ });
});

test('bad arguments are TypeError / RangeError naming the argument', (t) => {
  const reader = () => new ReadDirectory(dataset);
  t.throws(() => new BufferData(reader(), { length: 0 }), { instanceOf: RangeError, message: /'length'/ });
  t.throws(() => new BufferData(reader(), { length: -3 }), { instanceOf: RangeError, message: /'length'/ });
  t.throws(() => new BufferData(reader(), { length: 2.5 }), { instanceOf: RangeError, message: /'length'/ });
  t.throws(() => new BufferData(reader(), { length: '5' as unknown as number }), { instanceOf: TypeError, message: /'length'/ });
  // The ring allocates its slots up front: 1e9 would abort the process.
  const kept = reader();
  for (const length of [1e9, 2 ** 32 - 1, 2 ** 20 + 1]) {
    t.throws(() => new BufferData(kept, { length }), {
      instanceOf: RangeError,
      message: new RegExp(`'length'.*between 1 and 1048576, got ${length}`),
    });
  }
  // The reader survives the rejected options.
  t.is(new BufferData(kept, { length: 2 ** 20 }).length, 2 ** 20);
  const buffer = new BufferData(reader());
  for (const speed of [0, -1, Number.NaN]) {
    t.throws(() => new ScheduleBroadcasts(buffer, { speed }), { instanceOf: RangeError, message: /'speed'/ });
  }
  t.throws(() => new ScheduleBroadcasts(buffer, { speed: '2' as unknown as number }), { instanceOf: TypeError, message: /'speed'/ });
  t.throws(() => new ScheduleBroadcasts({} as never), { instanceOf: TypeError, message: /queue/ });
});

test('a reader handed to a BufferData cannot be used twice', (t) => {
  const reader = new ReadFile(join(dataset, 'UnitTestMessageA.log'));
  new BufferData(reader);
  t.throws(() => new BufferData(reader), { instanceOf: ReplayStateError, message: /another BufferData/ });
  t.throws(() => reader.read(), { instanceOf: ReplayStateError });
});

test('a queue has one consumer: a second ScheduleBroadcasts is an error', (t) => {
  const buffer = new BufferData(new ReadDirectory(dataset));
  const first = new ScheduleBroadcasts(buffer.queue);
  t.throws(() => new ScheduleBroadcasts(buffer.queue), { instanceOf: ReplayStateError, message: /already has a consumer/ });
  t.throws(() => buffer.queue.get(), { instanceOf: ReplayStateError });
  first.close();
  first.close();
  const second = new ScheduleBroadcasts(buffer);
  second.close();
});

test('the ring is bounded by bytes as well as count', async (t) => {
  const dir = tempDir(t);
  const big = 'x'.repeat(10_000);
  const file = writeLog(join(dir, 'Big.log'), Array.from({ length: 50 }, (_, i) => ({ t: i, payload: big })), 'Big');
  const buffer = new BufferData(new ReadFile(file), { length: 1000, maxBytes: 35_000 });
  buffer.start();
  await until(() => buffer.isReady());
  t.is(buffer.queue.size, 3);
  t.true(buffer.queue.bytes <= 35_000);
  buffer.stop();
});
