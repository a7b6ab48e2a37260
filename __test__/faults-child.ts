// Child process of faults.spec.ts: provokes one fault through the public API
// and prints what happened as `RESULT {json}` lines (and `MARK name` lines
// whose arrival time the parent notes). Run as
//   node --import=tsx __test__/faults-child.ts <scenario> '<json args>'
// A crash (SIGBUS, abort) or a hang shows in the parent as the exit signal or
// a timeout, never in the test runner itself.
import { appendFileSync, readFileSync, readdirSync, truncateSync, unlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ReadFile, Replay, type Message, type ReplayOptions } from '../src/index.js';
import { STEP } from './faults-helpers.js';

type Action =
  | { op: 'truncate'; path: string; size: number }
  | { op: 'unlink'; path: string }
  | { op: 'append'; path: string; text: string }
  /** Append the bytes of `from` starting at `start` (regrow a cut file with its own tail). */
  | { op: 'appendFrom'; path: string; from: string; start: number };

export interface PlayArgs {
  source: string;
  /** Replay options; `speed: null` stands for Infinity (JSON has none). */
  options?: Omit<ReplayOptions, 'speed'> & { speed?: number | null };
  /** Act once this many messages have been delivered. */
  triggerAt: number;
  /** Pause the replay, wait `settleMs` (the producer fills the ring and stops), act, resume. */
  pause?: boolean;
  settleMs?: number;
  /** Act this long after the trigger (the replay keeps playing); else inside the message handler. */
  delayMs?: number;
  actions: Action[];
  /** Second group of actions, `laterMs` after the first (e.g. regrow after a cut). */
  later?: Action[];
  laterMs?: number;
}

const print = (value: unknown) => console.log(`RESULT ${JSON.stringify(value)}`);
const mark = (name: string) => console.log(`MARK ${name}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** `promise`, or `late` after `ms` if it has not settled by then (the timer does not hold the process). */
function within<T, L>(promise: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<L>((r) => (timer = setTimeout(() => r(late), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function act(actions: Action[]): void {
  for (const a of actions) {
    if (a.op === 'truncate') truncateSync(a.path, a.size);
    else if (a.op === 'unlink') unlinkSync(a.path);
    else if (a.op === 'append') appendFileSync(a.path, a.text);
    else appendFileSync(a.path, readFileSync(a.from).subarray(a.start));
  }
}

function errorInfo(err: unknown) {
  if (!(err instanceof Error)) return { name: typeof err, message: String(err) };
  const e = err as Error & { code?: string; path?: string };
  return { name: e.name, code: e.code, message: e.message, path: e.path };
}

function replayOptions(o: PlayArgs['options']): ReplayOptions {
  const { speed, ...rest } = o ?? {};
  return { ...rest, speed: speed === null || speed === undefined ? Infinity : speed };
}

/**
 * Play `source` (numbered records: payload = index within its message type,
 * time = index * STEP) and check every message as it comes: per type, the
 * payloads must be 0, 1, 2, … and the times match. Returns the summary.
 */
export async function play(args: PlayArgs) {
  const replay = new Replay(args.source, replayOptions(args.options));
  const counts: Record<string, number> = {};
  let total = 0;
  let bad: unknown = null;
  let triggeredAt: number | null = null;
  let error: unknown = null;
  let ended = false;
  const t0 = performance.now();

  const trigger = async () => {
    if (args.pause) {
      replay.pause();
      await sleep(args.settleMs ?? 50);
      act(args.actions);
      replay.start();
    } else if (args.delayMs !== undefined) {
      await sleep(args.delayMs);
      act(args.actions);
    } else {
      act(args.actions);
    }
    if (args.later) {
      await sleep(args.laterMs ?? 0);
      act(args.later);
    }
  };
  let acting: Promise<void> = Promise.resolve();

  replay.on('message', (m: Message) => {
    const type = m.type ?? 'null';
    const expect = counts[type] ?? 0;
    counts[type] = expect + 1;
    total++;
    if (
      bad === null &&
      (m.payload !== expect || m.topic !== '' || Math.abs(m.elapsedTime - expect * STEP) > STEP / 10)
    ) {
      bad = { index: total - 1, type, expect, payload: m.payload, elapsedTime: m.elapsedTime, topic: m.topic };
    }
    if (total === args.triggerAt) {
      triggeredAt = total;
      mark('triggered');
      acting = trigger();
    }
  });
  replay.on('end', () => (ended = true));
  replay.on('error', (err) => (error = errorInfo(err)));
  replay.start();
  try {
    await replay.done;
  } catch (err) {
    error ??= errorInfo(err);
  }
  await acting;
  replay.close();
  return { counts, total, bad, error, ended, triggeredAt, ms: Math.round(performance.now() - t0) };
}

/** A worker running faults-worker.mjs (plain JS on dist/: Node 20 workers do not run under tsx). */
function startWorker(workerData: { mode: string; log: string }): Worker {
  return new Worker(new URL('./faults-worker.mjs', import.meta.url), { workerData });
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

const scenarios: Record<string, (args: any) => Promise<void>> = {
  /** One replay with faults applied to its files while it plays. */
  async play(args: PlayArgs) {
    print(await play(args));
  },

  /**
   * `files.length` live readers (all referenced), then the file of reader
   * `target` is truncated to `cutSize` after `readBefore` records were read
   * from it, and read on.
   */
  async readers(args: { files: string[]; target: number; readBefore: number; cutSize: number }) {
    const readers = args.files.map((f) => new ReadFile(f));
    mark(`opened ${readers.length} readers, ${fdCount()} fds`);
    const r = readers[args.target]!;
    let read = 0;
    let bad: unknown = null;
    const check = (m: { payload: unknown }) => {
      if (bad === null && m.payload !== read) bad = { index: read, payload: m.payload };
      read++;
    };
    for (let i = 0; i < args.readBefore; i++) check(r.read()!);
    truncateSync(args.files[args.target]!, args.cutSize);
    mark('cut');
    let error: unknown = null;
    try {
      for (let m = r.read(); m !== null; m = r.read()) check(m);
    } catch (err) {
      error = errorInfo(err);
    }
    print({ readers: readers.length, read, bad, error });
  },

  /**
   * `n` replays created and closed but still referenced (so no GC can free
   * what close() left behind), then one more replay that meets a cut.
   */
  async closedReplays(args: { file: string; n: number; start: boolean; play: PlayArgs }) {
    const keep: Replay[] = [];
    for (let i = 0; i < args.n; i++) {
      const r = new Replay(args.file, { speed: Infinity });
      if (args.start) {
        r.start();
        await r.done;
      }
      r.close();
      keep.push(r);
    }
    mark(`closed ${keep.length} replays, ${fdCount()} fds`);
    print({ ...(await play(args.play)), fds: fdCount(), kept: keep.length });
  },

  /** Open fds while replays are created and closed (kept referenced: no GC can help). */
  async fds(args: { file: string; n: number; start: boolean; every: number }) {
    const keep: Replay[] = [];
    const counts = [fdCount()];
    for (let i = 1; i <= args.n; i++) {
      const r = new Replay(args.file, { speed: Infinity });
      if (args.start) {
        r.start();
        await r.done;
      }
      r.close();
      keep.push(r);
      if (i % args.every === 0) counts.push(fdCount());
    }
    print({ counts, kept: keep.length });
  },

  /**
   * Replays dropped without close() (never started, or played to the end),
   * then garbage collected (needs --expose-gc): open fds before and after.
   */
  async dropped(args: { file: string; n: number; start: boolean }) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error('run with --expose-gc');
    const before = fdCount();
    for (let i = 0; i < args.n; i++) {
      const r = new Replay(args.file, { speed: Infinity });
      if (args.start) {
        r.start();
        await r.done;
      }
    }
    const unreachable = fdCount();
    for (let k = 0; k < 5; k++) {
      gc();
      await sleep(20);
    }
    print({ before, unreachable, afterGc: fdCount() });
  },

  /**
   * A process that leaves with live replays: `how` says how it leaves.
   * `big` is a long log (1 s of 1 µs records); `small` a short one.
   */
  async exit(args: { how: string; big: string; small: string; udpPort?: number }) {
    const slow = { speed: 0.001 }; // the big log then lasts 1000 s
    const got = (r: Replay, n = 1) =>
      new Promise<void>((resolve) => {
        let seen = 0;
        const on = () => {
          if (++seen >= n) {
            r.off('message', on);
            resolve();
          }
        };
        r.on('message', on);
      });
    switch (args.how) {
      case 'exit-live': {
        // Playing (timed), playing (flat out), paused, never started.
        const timed = new Replay(args.big, slow);
        const fast = new Replay(args.big, { speed: Infinity });
        const paused = new Replay(args.big, slow);
        const idle = new Replay(args.big);
        const firstTimed = got(timed);
        const firstFast = got(fast, 1000);
        const firstPaused = got(paused);
        timed.start();
        fast.start();
        paused.start();
        await Promise.all([firstTimed, firstFast, firstPaused]);
        paused.pause();
        void idle;
        mark('exiting');
        process.exit(0);
      }
      // falls through (never reached)
      case 'exit-in-handler': {
        // process.exit from inside a message handler, mid-batch, flat out.
        const fast = new Replay(args.big, { speed: Infinity });
        let n = 0;
        fast.on('message', () => {
          if (++n === 50_000) {
            mark('exiting');
            process.exit(0);
          }
        });
        fast.start();
        return;
      }
      case 'exit-udp': {
        // A native UDP sink sending from its own thread, JS delivery off.
        const udp = new Replay(args.big, {
          speed: 0.01,
          js: false,
          udp: { destination: `udp://127.0.0.1:${args.udpPort}` },
        });
        udp.start();
        await sleep(300);
        mark(`exiting sent=${udp.udpStats()?.datagrams}`);
        process.exit(0);
      }
      // falls through (never reached)
      case 'fall-off-paused': {
        // Paused (timed and flat out), stopped, never started: the module
        // and every callback return; nothing should hold the process.
        const timed = new Replay(args.big, slow);
        const fast = new Replay(args.big, { speed: Infinity });
        const stopped = new Replay(args.big, slow);
        new Replay(args.big);
        const a = got(timed);
        const b = got(fast, 1000);
        const c = got(stopped);
        timed.start();
        fast.start();
        stopped.start();
        await Promise.all([a, b, c]);
        timed.pause();
        fast.pause();
        stopped.stop();
        mark('exiting');
        return;
      }
      case 'break-iteration': {
        // `for await (const m of new Replay(…))`, left with break: nothing
        // else refers to the replay, and the module ends.
        let n = 0;
        for await (const _ of new Replay(args.big, slow)) if (++n === 10) break;
        mark('exiting');
        return;
      }
      case 'fall-off-ended': {
        // Played to the end, never closed (plus one never started).
        const r = new Replay(args.small, { speed: Infinity });
        new Replay(args.small);
        let n = 0;
        r.on('message', () => n++);
        r.on('end', () => {
          mark(`exiting n=${n}`);
        });
        r.start();
        return;
      }
      default:
        throw new Error(`unknown exit mode ${args.how}`);
    }
  },

  /**
   * Workers running replays: `cycles` workers terminated mid-replay one after
   * the other, then workers whose script returns while their replay plays
   * or is paused. Prints one RESULT per worker, then a final one after a
   * replay on the main thread.
   */
  async workers(args: { big: string; small: string; cycles: number; modes?: string[]; returning?: string[] }) {
    const modes = args.modes ?? ['flat-out', 'timed', 'paused'];
    for (let i = 0; i < args.cycles; i++) {
      const mode = modes[i % modes.length]!;
      const w = startWorker({ mode, log: args.big });
      const t0 = performance.now();
      const ready = await new Promise<any>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
      });
      // Let it play a little longer (batches in flight to its event loop).
      await sleep(mode === 'flat-out' ? 5 : 20);
      const code = await within(w.terminate(), 10_000, 'terminate() did not resolve in 10 s');
      print({ cycle: i, mode, ready, terminate: code, ms: Math.round(performance.now() - t0) });
    }
    for (const mode of args.returning ?? ['return-playing', 'return-paused']) {
      const w = startWorker({ mode, log: mode === 'return-playing' ? args.big : args.small });
      const t0 = performance.now();
      const messages: unknown[] = [];
      w.on('message', (m) => messages.push(m));
      const errors: unknown[] = [];
      w.on('error', (e) => errors.push(errorInfo(e)));
      const code = await within(new Promise<number>((resolve) => w.once('exit', resolve)), 15_000, 'no exit within 15 s');
      if (typeof code === 'string') await w.terminate();
      print({ mode, exit: code, messages, errors, ms: Math.round(performance.now() - t0) });
    }
    // The main thread's addon still works.
    print({ final: await play({ source: args.small, triggerAt: -1, actions: [] }) });
  },
};

const [scenario, json] = process.argv.slice(2);
const run = scenarios[scenario!];
if (!run) throw new Error(`unknown scenario ${scenario}`);
await run(JSON.parse(json ?? '{}'));
