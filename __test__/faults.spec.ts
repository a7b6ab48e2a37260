// Fault tests (DESIGN.md, "Robustness rules"): files cut, deleted or regrown
// while they are replayed, more live readers than any fixed table, processes
// that exit with live replays, workers terminated mid-replay.
//
// Every fault is provoked in a child process (faults-child.ts, run with
// `node --import=tsx`), which prints what it saw; a crash (SIGBUS, abort) or
// a hang then shows as the child's exit signal or a timeout instead of
// killing ava. Logs are numbered (payload = index, time = index µs), so the
// child checks each delivered message: intact, in order, nothing after a cut.
//
// Tests named "[was: …]" failed on the code this file was written against
// (6d8f81e: the SIGBUS guard's fixed table of 1,024 mappings, Replay.close()
// not releasing its reader, split sets mapping every part up front): each
// child died of SIGBUS, or the fds grew one per cycle.
import test, { type ExecutionContext } from 'ava';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { header, tempDir } from './helpers.js';
import { describe, numberedText, runChild, writeNumbered, writeSmall, type ChildResult } from './faults-helpers.js';

/** Records of the master log: 1 s of records 1 µs apart, ~39 MB. */
const N = 1_000_000;
let shared: string;
let master: string;
let masterBytes: Buffer;
/** Byte offset of each record's line in the master log. */
let offsets: Float64Array;
const at = (k: number) => offsets[k]!;

test.before(() => {
  shared = mkdtempSync(join(tmpdir(), 'netreplay-faults-'));
  master = join(shared, 'Big.log');
  offsets = writeNumbered(master, 0, N, 'Big');
  masterBytes = readFileSync(master);
});

test.after.always(() => {
  if (shared) rmSync(shared, { recursive: true, force: true });
});

/** Records [from, to) of the master log as a file; with the master's header when `from` is 0. */
function slice(path: string, from: number, to: number): string {
  writeFileSync(path, masterBytes.subarray(from === 0 ? 0 : at(from), to === N ? masterBytes.length : at(to)));
  return path;
}

/** The master log's records under the header of another message type. */
function retyped(path: string, type: string): string {
  writeFileSync(path, Buffer.concat([Buffer.from(header(type)), masterBytes.subarray(at(0))]));
  return path;
}

/**
 * Log how each child ended and what it printed, before any assertion (ava's
 * assertions throw: a test with several children would otherwise only show
 * the first failure).
 */
function logRuns(t: ExecutionContext, runs: ChildResult[]): void {
  for (const r of runs) {
    if (r.timedOut || r.signal !== null || r.code !== 0) t.log(describe(r));
    for (const res of r.results) t.log(JSON.stringify(res));
  }
}

/** The child exited by itself, with code 0, and printed exactly one RESULT. */
function result(t: ExecutionContext, r: ChildResult, log = true): any {
  if (log) logRuns(t, [r]);
  t.false(r.timedOut, describe(r));
  t.is(r.signal, null, `must not crash: ${describe(r)}`);
  t.is(r.code, 0, describe(r));
  t.is(r.results.length, 1, describe(r));
  return r.results[0] ?? {};
}

/** The replay ended with LogAccessError "shrank" naming `path`, and every message was intact. */
function shrank(t: ExecutionContext, res: any, path: string): void {
  t.is(res.bad, null, 'every delivered message intact and in order');
  t.false(res.ended, "no 'end' after a cut");
  t.truthy(res.error, 'the replay ends with an error');
  t.is(res.error?.name, 'LogAccessError');
  t.is(res.error?.code, 'ERR_NETREPLAY_IO');
  t.is(res.error?.path, path);
  t.true(String(res.error?.message).includes(path), res.error?.message);
  t.regex(String(res.error?.message), /shrank/);
}

// Small ring, few batches in flight: when paused, the reader is at most a
// few thousand records ahead of what JS has seen.
const tight = { length: 1000, maxPendingBatches: 2 };
// The cuts below land mid-line (7 bytes into the record's line).
const MID = 7;

// ------------------------------------------------------------ 1. truncation

test('cut while replaying: single file, cut ahead of the reader (paused, cut, resumed)', async (t) => {
  const log = join(tempDir(t), 'Big.log');
  const C = 500_000;
  const r = await runChild(
    'play',
    { source: log, options: tight, triggerAt: 100_000, pause: true, actions: [{ op: 'truncate', path: log, size: at(C) + MID }] },
    { setup: () => slice(log, 0, N) },
  );
  const res = result(t, r);
  shrank(t, res, log);
  t.is(res.total, C, 'every record before the cut, none after');
});

test('cut while replaying: single file, cut ahead of the reader while it plays flat out', async (t) => {
  // Default ring and batches: the reader is < 300 000 records ahead of JS.
  const log = join(tempDir(t), 'Big.log');
  const C = 700_000;
  const r = await runChild(
    'play',
    { source: log, triggerAt: 100_000, actions: [{ op: 'truncate', path: log, size: at(C) + MID }] },
    { setup: () => slice(log, 0, N) },
  );
  const res = result(t, r);
  shrank(t, res, log);
  t.is(res.total, C, 'every record before the cut, none after');
});

test('cut while replaying: single file, cut behind the reader (to 0, and mid-file) while it plays', async (t) => {
  const dir = tempDir(t);
  const zero = join(dir, 'Zero.log');
  const mid = join(dir, 'Mid.log');
  const [a, b] = await Promise.all([
    runChild('play', { source: zero, triggerAt: 100_000, actions: [{ op: 'truncate', path: zero, size: 0 }] }, { setup: () => slice(zero, 0, N) }),
    runChild(
      'play',
      { source: mid, triggerAt: 300_000, actions: [{ op: 'truncate', path: mid, size: at(100_000) + MID }] },
      { setup: () => slice(mid, 0, N) },
    ),
  ]);
  logRuns(t, [a, b]);
  const resA = result(t, a, false);
  shrank(t, resA, zero);
  t.true(resA.total >= 100_000 && resA.total < N, `${resA.total} delivered`);
  const resB = result(t, b, false);
  shrank(t, resB, mid);
  t.true(resB.total >= 300_000 && resB.total < N, `${resB.total} delivered`);
});

test('cut while replaying: single file, cut inside its last page (no page lost, no SIGBUS), with onError fail and skip', async (t) => {
  // Truncation inside the last page zeroes the rest of that page without any
  // fault: only the file's length tells. 'skip' must not skip the damage.
  const dir = tempDir(t);
  const C = N - 5;
  const runs = (['fail', 'skip'] as const).map((onError) => {
    const log = join(dir, `Big-${onError}.log`);
    return runChild(
      'play',
      {
        source: log,
        options: { ...tight, onError },
        triggerAt: 100_000,
        pause: true,
        actions: [{ op: 'truncate', path: log, size: at(C) + MID }],
      },
      { setup: () => slice(log, 0, N) },
    ).then((r) => ({ r, log }));
  });
  const done = await Promise.all(runs);
  logRuns(t, done.map((d) => d.r));
  for (const { r, log } of done) {
    const res = result(t, r, false);
    shrank(t, res, log);
    t.is(res.total, C, 'every record before the cut, none after');
  }
});

/** A split set Big_000.log … of `parts` equal parts of the master log (only the first with a header). */
function splitSet(dir: string, parts: number): string[] {
  const n = N / parts;
  return Array.from({ length: parts }, (_, i) => slice(join(dir, `Big_${String(i).padStart(3, '0')}.log`), i * n, (i + 1) * n));
}

test('cut while replaying: split set, a later part cut while an earlier one is read', async (t) => {
  const dir = tempDir(t);
  let parts: string[] = [];
  const C = 550_000; // in part 2 of 4 (records 500 000 … 749 999)
  const part2 = join(dir, 'Big_002.log');
  const r = await runChild(
    'play',
    {
      source: join(dir, 'Big'),
      options: tight,
      triggerAt: 100_000, // reading part 0
      pause: true,
      actions: [{ op: 'truncate', path: part2, size: at(C) - at(500_000) + MID }],
    },
    { setup: () => (parts = splitSet(dir, 4)) },
  );
  t.is(parts[2], part2);
  const res = result(t, r);
  // Parts are opened one at a time, but each part's length is taken when
  // the set is opened: part 2, cut before it was reached, shrank.
  shrank(t, res, part2);
  t.is(res.total, 500_000, 'parts 0 and 1 whole; nothing of part 2, found cut when it was opened');
  t.true(C > 500_000);
});

test('cut while replaying: split set, the part being read cut ahead of the reader', async (t) => {
  const dir = tempDir(t);
  const C = 450_000; // in part 1 of 4 (records 250 000 … 499 999)
  const part1 = join(dir, 'Big_001.log');
  const r = await runChild(
    'play',
    {
      source: join(dir, 'Big'),
      options: tight,
      triggerAt: 300_000, // reading part 1
      pause: true,
      actions: [{ op: 'truncate', path: part1, size: at(C) - at(250_000) + MID }],
    },
    { setup: () => splitSet(dir, 4) },
  );
  const res = result(t, r);
  shrank(t, res, part1);
  t.is(res.total, C, 'part 0 whole, part 1 up to the cut, nothing of parts 2 and 3');
});

test("cut while replaying: directory, one stream's file cut", async (t) => {
  // Two streams A and B with the same times (ties: A first); B is cut.
  const dir = tempDir(t);
  const a = join(dir, 'A.log');
  const b = join(dir, 'B.log');
  const C = 300_000;
  const headerBytes = Buffer.byteLength(header('B'));
  const r = await runChild(
    'play',
    {
      source: dir,
      options: tight,
      triggerAt: 200_000, // 100 000 of each
      pause: true,
      actions: [{ op: 'truncate', path: b, size: headerBytes + at(C) - at(0) + MID }],
    },
    {
      setup: () => {
        retyped(a, 'A');
        retyped(b, 'B');
      },
    },
  );
  const res = result(t, r);
  shrank(t, res, b);
  t.is(res.counts?.B, C, 'B up to the cut');
  // A's records are all intact (checked by the child); the error ends the
  // replay at B's cut, give or take A's record of the same time.
  t.true(res.counts?.A >= C && res.counts?.A <= C + 1, `A: ${res.counts?.A}`);
});

// ---------------------------------------------------- 2. deleted, regrown

test('deleted while replaying: the mapping keeps the file readable, it plays to the end', async (t) => {
  const log = join(tempDir(t), 'Big.log');
  const r = await runChild(
    'play',
    { source: log, triggerAt: 100_000, actions: [{ op: 'unlink', path: log }] },
    { setup: () => slice(log, 0, N) },
  );
  const res = result(t, r);
  // Documented behaviour: an unlinked file lives on while mapped/open.
  t.is(res.error, null);
  t.true(res.ended);
  t.is(res.bad, null);
  t.is(res.total, N);
});

/** Regrown (cut, then written longer): an error naming the file, or correct data; never a crash. */
function errorOrCorrect(t: ExecutionContext, res: any, path: string, lengths: number[]): void {
  t.is(res.bad, null, 'every delivered message intact and in order');
  if (res.error) {
    t.log(`ended with ${res.error.name}: ${res.error.message}`);
    t.true(['LogAccessError', 'MalformedRecordError'].includes(res.error.name), res.error.name);
    t.is(res.error.path, path);
    if (res.error.name === 'LogAccessError') t.regex(res.error.message, /shrank/);
    t.false(res.ended);
  } else {
    t.log(`played to the end: ${res.total} records`);
    t.true(res.ended);
    t.true(lengths.includes(res.total), `${res.total} records, expected one of ${lengths}`);
  }
}

const EXTRA = 1000;

test('regrown while replaying: cut mid-line, then written longer, before the reader gets there', async (t) => {
  const log = join(tempDir(t), 'Big.log');
  const cut = at(500_000) + MID;
  const r = await runChild(
    'play',
    {
      source: log,
      options: tight,
      triggerAt: 100_000,
      pause: true,
      actions: [
        { op: 'truncate', path: log, size: cut },
        { op: 'appendFrom', path: log, from: master, start: cut },
        { op: 'append', path: log, text: numberedText(N, N + EXTRA) },
      ],
    },
    { setup: () => slice(log, 0, N) },
  );
  const res = result(t, r);
  // The original length (the mapping's) or all of the new file.
  errorOrCorrect(t, res, log, [N, N + EXTRA]);
});

test('regrown while replaying: cut just ahead of the reader, regrown while it runs into the cut', async (t) => {
  const dir = tempDir(t);
  const runs = [0, 5, 40].map((laterMs) => {
    const log = join(dir, `Big${laterMs}.log`);
    const cut = at(150_000) + MID;
    return runChild(
      'play',
      {
        source: log,
        triggerAt: 100_000,
        actions: [{ op: 'truncate', path: log, size: cut }],
        laterMs,
        later: [
          { op: 'appendFrom', path: log, from: master, start: cut },
          { op: 'append', path: log, text: numberedText(N, N + EXTRA) },
        ],
      },
      { setup: () => slice(log, 0, N) },
    ).then((r) => ({ r, log }));
  });
  const done = await Promise.all(runs);
  logRuns(t, done.map((d) => d.r));
  for (const { r, log } of done) errorOrCorrect(t, result(t, r, false), log, [N, N + EXTRA]);
});

// -------------------------------------------- 3. more live maps than a table

// 1,100 files and maps at once: above the guard's 1,024 slots. The fd limit
// here was 20 000; the child raises its soft limit in case it is lower.
const MANY = 1100;
const fdLimit = { prefix: 'ulimit -n 8192 2>/dev/null; true' };

test('[was: a guard table of 1,024] 1,100 live readers; the file of reader #1,099 cut while read: an error, not SIGBUS', async (t) => {
  const dir = tempDir(t);
  const files = Array.from({ length: MANY }, (_, i) => join(dir, `F${String(i).padStart(4, '0')}.log`));
  const res = result(
    t,
    await runChild(
      'readers',
      {
        files,
        target: MANY - 1,
        readBefore: 5,
        cutSize: 0,
      },
      { ...fdLimit, setup: () => files.forEach((f) => writeSmall(f)) },
    ),
  );
  t.is(res.readers, MANY);
  t.is(res.bad, null);
  t.is(res.error?.name, 'LogAccessError');
  t.is(res.error?.path, files[MANY - 1]);
  t.regex(String(res.error?.message), /shrank/);
});

test('[was: close() kept the reader; a guard table of 1,024] 1,100 closed but referenced replays, then one more cut while playing: an error, not SIGBUS', async (t) => {
  const dir = tempDir(t);
  const runs = [false, true].map((start) => {
    const log = join(dir, `Big-${start}.log`);
    // One per child: a setup writing a file the other child is opening would cut it.
    const small = join(dir, `Small-${start}.log`);
    return runChild(
      'closedReplays',
      {
        file: small,
        n: MANY,
        start, // false: created and closed; true: played to the end, then closed
        play: { source: log, options: tight, triggerAt: 100_000, pause: true, actions: [{ op: 'truncate', path: log, size: 0 }] },
      },
      {
        ...fdLimit,
        setup: () => {
          writeSmall(small);
          slice(log, 0, N);
        },
      },
    ).then((r) => ({ r, log }));
  });
  const done = await Promise.all(runs);
  logRuns(t, done.map((d) => d.r));
  for (const { r, log } of done) {
    const res = result(t, r, false);
    t.is(res.kept, MANY);
    shrank(t, res, log);
    t.true(res.total >= 100_000, `${res.total} delivered`);
  }
});

test('[was: close() kept the reader] Replay.close() frees the file descriptor at once: 1,000 create/close cycles keep the fd count flat', async (t) => {
  // The replays stay referenced, so no garbage collection can hide a leak.
  const small = writeSmall(join(tempDir(t), 'Small.log'));
  const [created, played] = await Promise.all([
    runChild('fds', { file: small, n: 1000, start: false, every: 100 }, fdLimit),
    runChild('fds', { file: small, n: 200, start: true, every: 50 }, fdLimit),
  ]);
  const runs = [
    ['1,000 created and closed', created],
    ['200 played to the end and closed', played],
  ] as const;
  for (const [what, r] of runs) t.log(`${what}: open fds ${r.results[0]?.counts?.join(' → ') ?? describe(r)}`);
  for (const [what, r] of runs) {
    const res = result(t, r, false);
    const counts: number[] = res.counts ?? [];
    t.true(counts.length > 1);
    // Slack for whatever Node opens on the way (a few fds), not one per replay.
    t.true(counts.at(-1)! - counts[0]! <= 8, `${what}: open fds grew ${counts.join(' → ')}`);
  }
});

// Found while writing these tests: a Replay dropped without close() was
// never collected, even by forced full GCs, so its fd, mapping, guard slot
// and ring stayed for the life of the process (the native ThreadsafeFunction
// holds its JS callback strongly, and that callback held the Replay; it now
// holds it weakly).
test('a replay dropped without close() is garbage collected: its file descriptor is freed by GC', async (t) => {
  const small = writeSmall(join(tempDir(t), 'Small.log'));
  const [never, ended] = await Promise.all([
    runChild('dropped', { file: small, n: 200, start: false }, { nodeArgs: ['--expose-gc'] }),
    runChild('dropped', { file: small, n: 50, start: true }, { nodeArgs: ['--expose-gc'] }),
  ]);
  logRuns(t, [never!, ended!]);
  for (const [what, r] of [
    ['200 never started', never!],
    ['50 played to the end', ended!],
  ] as const) {
    const res = result(t, r, false);
    t.true(res.afterGc - res.before <= 8, `${what}, dropped, 5 forced GCs: open fds ${res.before} → ${res.unreachable} → ${res.afterGc}`);
  }
});

test('[was: split sets mapped every part up front; a guard table of 1,024] split set of 1,100 parts, part 1,099 cut while it is read: an error, not SIGBUS', async (t) => {
  // Parts 0 … 1,098 of 20 records, part 1,099 of 300 000 (~11 MB).
  const dir = tempDir(t);
  const SMALL = 20;
  const first = (MANY - 1) * SMALL; // first record of the last part
  const last = join(dir, `Big_${MANY - 1}.log`);
  const r = await runChild(
    'play',
    {
      source: join(dir, 'Big'),
      options: tight,
      triggerAt: first + 10_000, // reading the last part
      pause: true,
      // Cut behind the reader: its current page is gone.
      actions: [{ op: 'truncate', path: last, size: at(first + 10) - at(first) + MID }],
    },
    {
      ...fdLimit,
      setup: () => {
        for (let i = 0; i < MANY - 1; i++) slice(join(dir, `Big_${String(i).padStart(3, '0')}.log`), i * SMALL, (i + 1) * SMALL);
        slice(last, first, first + 300_000);
      },
    },
  );
  const res = result(t, r);
  shrank(t, res, last);
  t.true(res.total >= first + 10_000, `${res.total} delivered`);
});

// ------------------------------------------- 4. exiting with live replays

async function exits(t: ExecutionContext, how: string, extra: object = {}, timeoutMs = 30_000): Promise<void> {
  const small = writeSmall(join(tempDir(t), 'Small.log'));
  const r = await runChild('exit', { how, big: master, small, ...extra }, { timeoutMs });
  t.false(r.timedOut, `hangs: ${describe(r)}`);
  t.is(r.signal, null, `must not crash: ${describe(r)}`);
  t.is(r.code, 0, describe(r));
  const exiting = r.marks['exiting'];
  t.truthy(exiting, `never got to exit: ${describe(r)}`);
  const ms = r.exitedAt - exiting!;
  t.log(`${r.stdout.trim()}; exited ${Math.round(ms)} ms after`);
  t.true(ms < 5000, `exited ${Math.round(ms)} ms after it was asked to`);
}

test('process.exit(0) with replays playing (timed and flat out), paused and never started: exits at once, rc 0', (t) =>
  exits(t, 'exit-live'));

test('process.exit(0) inside a message handler of a replay playing flat out: rc 0', (t) => exits(t, 'exit-in-handler'));

test('process.exit(0) while a UDP-only replay sends from its native thread: rc 0', async (t) => {
  const sock = createSocket('udp4');
  sock.on('message', () => {});
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  try {
    await exits(t, 'exit-udp', { udpPort: sock.address().port });
  } finally {
    sock.close();
  }
});

test('main module falls off its end with replays paused, stopped and never started: the process exits, rc 0', (t) =>
  exits(t, 'fall-off-paused'));

test('a replay played to the end and never closed (and one never started) does not hold the process', (t) =>
  exits(t, 'fall-off-ended'));

// Found while writing these tests: leaving a `for await` over a replay
// (break, return, throw) did not stop the replay, which played on to the end
// of the log with no consumer and kept the process alive all that time (here
// 1,000 s at speed 0.001). Leaving the loop now closes a replay it started.
test('leaving a for-await over a replay stops it: break out of the iteration, the module ends, the process exits', (t) =>
  exits(t, 'break-iteration', {}, 10_000));

// ------------------------------------------------------------- 5. workers

test('workers terminated mid-replay (10 cycles: flat out, timed, paused), and workers whose script returns while their replay plays or is paused', async (t) => {
  const small = writeSmall(join(tempDir(t), 'Small.log'));
  const r = await runChild('workers', { big: master, small, cycles: 10 }, { timeoutMs: 60_000 });
  t.false(r.timedOut, `hangs: ${describe(r)}`);
  t.is(r.signal, null, `the main process must survive: ${describe(r)}`);
  t.is(r.code, 0, describe(r));
  const cycles = r.results.filter((x) => 'cycle' in x);
  t.is(cycles.length, 10, describe(r));
  for (const c of cycles) {
    t.log(JSON.stringify(c));
    // terminate() resolves with the exit code 1 of a terminated worker.
    t.is(c.terminate, 1, JSON.stringify(c));
  }
  const playing = r.results.find((x) => x.mode === 'return-playing');
  t.log(JSON.stringify(playing));
  t.is(playing?.exit, 0, 'the worker plays to the end, then exits by itself');
  t.deepEqual(playing?.messages, [{ end: N }]);
  t.deepEqual(playing?.errors, []);
  const paused = r.results.find((x) => x.mode === 'return-paused');
  t.log(JSON.stringify(paused));
  t.is(paused?.exit, 0, 'a paused replay does not hold the worker');
  t.deepEqual(paused?.messages, [{ paused: true }]);
  const final = r.results.find((x) => 'final' in x)?.final;
  t.is(final?.total, 400, 'the main thread still replays afterwards');
  t.true(final?.ended);
});
