// The defects found by trying netreplay as a hostile user would (issue
// "Six defects that crash or corrupt a replay"), each as the test that
// failed before its fix. Truncation past 1,024 live mappings is in
// faults.spec.ts; the writer's time range in net.spec.ts; the ring's
// length bound in buffer.spec.ts.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { MalformedRecordError, ReadDirectory, Replay, type Message } from '../src/index.js';
import { dataset, header, line, root, sleep, tempDir } from './helpers.js';

const packr = new Packr({ useRecords: false });

/** A typed log cycling topics a/b/c; payloads `{ seq, t, topic }`. */
function cyclingLog(dir: string, n: number, step: number): string {
  const topics = ['a', 'b', 'c'];
  const records = Array.from({ length: n }, (_, seq) => {
    const topic = topics[seq % 3]!;
    return { t: seq * step, topic, payload: { seq, t: topic } };
  });
  const path = join(dir, 'Cycle.log');
  writeFileSync(path, header('Cycle') + records.map(line).join(''));
  return path;
}

for (const speed of [1, Infinity]) {
  test.serial(`topics stay right after start(); stop(); start() at speed ${speed}`, async (t) => {
    const path = cyclingLog(tempDir(t), 300, 0.0005);
    for (let round = 0; round < 5; round++) {
      const replay = new Replay(path, { speed });
      const got: Message<{ seq: number; t: string }>[] = [];
      replay.on('message', (m) => got.push(m as Message<{ seq: number; t: string }>));
      replay.start();
      replay.stop();
      replay.start();
      await replay.done;
      replay.close();
      t.is(got.length, 300, `round ${round}`);
      const wrong = got.filter((m) => m.topic !== m.payload.t);
      t.deepEqual(wrong.slice(0, 3), [], `round ${round}: messages with another message's topic`);
      t.deepEqual(
        got.map((m) => m.payload.seq),
        Array.from({ length: 300 }, (_, i) => i),
      );
    }
  });
}

/** A log whose third record's payload is valid hex but not msgpack. */
function logWithBadPayload(dir: string, hex: string): { path: string; line: number } {
  const good = (t: number, seq: number) => line({ t, topic: 'x', payload: { seq } });
  const text = header('Bad') + good(0, 0) + good(0.001, 1) + `     0.00200    'x'         ${hex}\n` + good(0.003, 3);
  const path = join(dir, `bad-${hex}.log`);
  writeFileSync(path, text);
  return { path, line: header('Bad').split('\n').length + 2 };
}

for (const hex of ['c1c1c1', '81a37365', '9301']) {
  test(`payload ${hex} (valid hex, not msgpack) fails the replay with file, line and snippet`, async (t) => {
    const { path, line: badLine } = logWithBadPayload(tempDir(t), hex);
    const replay = new Replay(path, { speed: Infinity });
    const seqs: number[] = [];
    const errors: Error[] = [];
    replay.on('message', (m) => seqs.push((m.payload as { seq: number }).seq));
    replay.on('error', (e) => errors.push(e));
    replay.start();
    const err = await t.throwsAsync(replay.done, { instanceOf: MalformedRecordError });
    replay.close();
    t.deepEqual(seqs, [0, 1], 'the records before it are delivered');
    t.is(errors.length, 1);
    t.is(err?.path, path);
    t.is(err?.line, badLine);
    t.true(err?.snippet?.includes(hex), err?.snippet);
    t.regex(err!.message, /msgpack/);
  });

  test(`payload ${hex} is skipped and counted with onError: 'skip', losing no other record`, async (t) => {
    const { path } = logWithBadPayload(tempDir(t), hex);
    const replay = new Replay(path, { speed: Infinity, onError: 'skip' });
    const seqs: number[] = [];
    for await (const m of replay) seqs.push((m.payload as { seq: number }).seq);
    t.deepEqual(seqs, [0, 1, 3]);
    const reader = new ReadDirectory(join(path, '..'), { onError: 'skip' });
    while (reader.read() !== null);
    t.is(reader.skipped, 1);
    replay.close();
  });
}

test('a payload msgpackr cannot decode (unknown extension) follows onError in JS, losing no neighbour', async (t) => {
  // Well-formed msgpack (fixext 1, type 5) that msgpackr refuses to decode.
  const { path } = logWithBadPayload(tempDir(t), 'd40501');
  const failing = new Replay(path, { speed: Infinity });
  const seqs: number[] = [];
  failing.on('message', (m) => seqs.push((m.payload as { seq: number }).seq));
  const err = await t.throwsAsync(
    (async () => {
      failing.start();
      await failing.done;
    })(),
    { instanceOf: MalformedRecordError },
  );
  t.regex(err!.message, /at 0\.002 s .*topic "x".*Unknown extension/);
  t.deepEqual(seqs, [0, 1]);
  t.false(failing.isAlive());
  // After the failure the replay can play again from the start.
  seqs.length = 0;
  failing.start();
  await t.throwsAsync(failing.done, { instanceOf: MalformedRecordError });
  t.deepEqual(seqs, [0, 1]);
  failing.close();

  const skipping = new Replay(path, { speed: Infinity, onError: 'skip' });
  const kept: number[] = [];
  for await (const m of skipping) kept.push((m.payload as { seq: number }).seq);
  t.deepEqual(kept, [0, 1, 3]);
  t.is(skipping.stats().skipped, 1);
  skipping.close();
});

test('the CLI reports a payload that is not msgpack with file and line, exit 1, no stack trace', (t) => {
  const { path, line: badLine } = logWithBadPayload(tempDir(t), 'c1c1c1');
  for (const args of [['play', path, '--speed', 'inf'], ['info', path]]) {
    const command = args[0];
    const r = spawnSync(process.execPath, ['--import=tsx', join(root, 'src', 'cli.ts'), ...args], {
      encoding: 'utf8',
      cwd: root,
      timeout: 60_000,
    });
    t.is(r.status, 1, `${command}: ${r.stderr}`);
    t.true(r.stderr.includes(`${path}:${badLine}`), r.stderr);
    t.notRegex(r.stderr, /\n\s+at /, `${command} printed a stack trace`);
  }
});

test.serial('speed 1e-14 plays the first record only (the deadline maths used to wrap)', async (t) => {
  const replay = new Replay(dataset, { speed: 1e-14 });
  const got: Message[] = [];
  replay.on('message', (m) => got.push(m));
  replay.start();
  await sleep(500);
  t.is(got.length, 1, 'all 20 fixture messages played within 0.5 s');
  const stopped = performance.now();
  replay.stop();
  t.true(performance.now() - stopped < 200, 'stop waits for the far deadline');
  replay.close();
});

test.serial('a log from -9e9 s to 9e9 s plays its first record, not both at once', async (t) => {
  const dir = tempDir(t);
  for (const [first, second] of [
    [-9e9, 9e9],
    [0, 8.9e9],
  ] as const) {
    const path = join(dir, `span-${first}.log`);
    writeFileSync(path, header('Span') + line({ t: first, payload: 1 }) + line({ t: second, payload: 2 }));
    const replay = new Replay(path);
    const got: Message[] = [];
    replay.on('message', (m) => got.push(m));
    replay.start();
    await sleep(300);
    t.deepEqual(
      got.map((m) => m.payload),
      [1],
    );
    t.true(replay.stats().lateness.p99 < 1, `lateness p99 ${replay.stats().lateness.p99} s`);
    replay.close();
  }
});

test('length: 1e9 is a RangeError, not an aborted process', (t) => {
  t.throws(() => new Replay(dataset, { length: 1e9 }), { instanceOf: RangeError, message: /'length'.*1048576/ });
});

/** The most the iterator held pending while its consumer paused twice. */
async function pendingWhilePaused(t: { is(a: unknown, b: unknown): void }, path: string, n: number) {
  const replay = new Replay(path, { speed: Infinity });
  const most = { messages: 0, bytes: 0 };
  let i = 0;
  for await (const m of replay) {
    t.is((m.payload as { i: number }).i, i++);
    if (i === 1 || i === n / 2) {
      // A consumer that stops pulling for a while: the engine must wait.
      await sleep(300);
      const p = replay.pending();
      most.messages = Math.max(most.messages, p.messages);
      most.bytes = Math.max(most.bytes, p.bytes);
    }
  }
  t.is(i, n);
  replay.close();
  return most;
}

function logOf(dir: string, name: string, n: number, blobBytes: number): string {
  const blob = 'x'.repeat(blobBytes);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const hex = Buffer.from(packr.pack({ i, blob })).toString('hex');
    lines.push(`${(i * 1e-6).toFixed(6).padStart(12)}    ''          ${hex}`);
  }
  const path = join(dir, `${name}.log`);
  writeFileSync(path, header(name) + lines.join('\n') + '\n');
  return path;
}

test('the async iterator holds at most 8192 messages and 8 MiB, as the README says', async (t) => {
  const dir = tempDir(t);
  // Small messages: the count bound is met first (it used to be ~123 k).
  const small = await pendingWhilePaused(t, logOf(dir, 'Small', 30_000, 10), 30_000);
  t.true(small.messages <= 8192 && small.messages > 4096, `${small.messages} messages pending`);
  // 2 kB messages: the byte bound is met first.
  const big = await pendingWhilePaused(t, logOf(dir, 'Big', 8_000, 2000), 8_000);
  t.true(big.bytes <= 8 * 2 ** 20 && big.bytes > 7 * 2 ** 20, `${big.bytes} bytes pending`);
  t.true(big.messages < 8192);
});
