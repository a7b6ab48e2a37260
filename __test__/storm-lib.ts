// Storm tests of playback control: a seeded PRNG drives start/pause/stop,
// speed changes, waits and re-opens on one Replay at a time, and every
// message is checked against the log (no loss, no duplicate, right order,
// right topic/type/time). Shared by __test__/storm.spec.ts (short) and
// bench/storm.ts (long). Deterministic given a seed: the sequence of
// operations is drawn from the PRNG alone; only message arrival times vary.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Replay, type Message } from '../src/index.js';
import { writeLog, type LogRecord } from './helpers.js';

// ---------------------------------------------------------------- PRNG

/** mulberry32: small, fast, good enough to drive a storm. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

// ---------------------------------------------------------------- logs

export const SPEEDS = [0.5, 1, 4, 50, Infinity] as const;
export const TOPICS = ['a', 'b', 'c'] as const;
export const TYPES = ['StormA', 'StormB'] as const;

/** The payload of a storm log record. */
export interface StormPayload {
  seq: number;
  type: string;
  topic: string;
  t: number;
}

export interface StormLog {
  /** The recording directory. */
  dir: string;
  /** The records in merge (time) order; records[i].seq === i. */
  records: StormPayload[];
  /** Time of the last record, s. */
  duration: number;
}

/**
 * A recording directory (one file per type, same `created`): `n` records,
 * strictly increasing times at gaps of 0.2–1 ms (multiples of 10 µs, what
 * the log's 5 decimals hold exactly), so there are no ties; types drawn at
 * random, topics cycling a/b/c, payload { seq, type, topic, t }.
 */
export function writeStormLog(dir: string, n: number, seed = 1): StormLog {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed ^ 0x5eed);
  const records: StormPayload[] = [];
  const perType = new Map<string, LogRecord[]>(TYPES.map((t) => [t, []]));
  let ticks = 0; // units of 10 µs
  for (let seq = 0; seq < n; seq++) {
    if (seq > 0) ticks += rng.int(20, 100);
    const t = ticks / 1e5;
    const type = rng.pick(TYPES);
    const topic = TOPICS[seq % TOPICS.length]!;
    const payload: StormPayload = { seq, type, topic, t };
    records.push(payload);
    perType.get(type)!.push({ t, topic, payload });
  }
  for (const [type, recs] of perType) writeLog(join(dir, `${type}.log`), recs, type);
  return { dir, records, duration: records.at(-1)?.t ?? 0 };
}

/** One file, topics cycling a/b/c, payload { seq, t }: the known-defect log. */
export function writeCycleLog(dir: string, n = 60, gap = 0.0005): string {
  mkdirSync(dir, { recursive: true });
  const recs: LogRecord[] = [];
  for (let seq = 0; seq < n; seq++) {
    const t = Math.round(seq * gap * 1e5) / 1e5;
    recs.push({ t, topic: TOPICS[seq % 3]!, payload: { seq, t } });
  }
  return writeLog(join(dir, 'Cycle.log'), recs, 'Cycle');
}

// ---------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Back to the event loop (a macrotask): every microtask chain has run. */
const macrotask = () => new Promise<void>((r) => setTimeout(r, 0));

function fmtSpeed(s: number): string {
  return s === Infinity ? 'inf' : String(s);
}

// ---------------------------------------------------------------- watchdog

/**
 * Out-of-thread watchdog: a synchronous native call that never returns
 * blocks the JS thread, so no JS timer can report it. The main thread beats
 * (every 200 ms, and at each operation with the op log line); a worker
 * thread that sees no beat for `stallMs` prints the op log tail and the
 * state to stderr and kills the process.
 */
export class Watchdog {
  static readonly SLOTS = 64;
  static readonly SLOT_BYTES = 320;
  readonly #sab = new SharedArrayBuffer(16 + Watchdog.SLOTS * Watchdog.SLOT_BYTES);
  readonly #beat = new BigInt64Array(this.#sab, 0, 1);
  readonly #count = new Int32Array(this.#sab, 8, 2);
  readonly #slots = new Uint8Array(this.#sab, 16);
  readonly #encoder = new TextEncoder();
  readonly #timer: NodeJS.Timeout;
  readonly #worker: Worker;

  constructor(stallMs = 15_000) {
    this.beat();
    this.#timer = setInterval(() => this.beat(), 200);
    this.#timer.unref();
    this.#worker = new Worker(WATCHDOG_CODE, {
      eval: true,
      workerData: { sab: this.#sab, stallMs, slots: Watchdog.SLOTS, slotBytes: Watchdog.SLOT_BYTES },
      execArgv: [],
    });
    this.#worker.unref();
  }

  beat(): void {
    Atomics.store(this.#beat, 0, BigInt(Date.now()));
  }

  /** Record a line of the op log (the last 64 are kept for a stall report). */
  note(line: string): void {
    const i = Atomics.load(this.#count, 0);
    const slot = this.#slots.subarray((i % Watchdog.SLOTS) * Watchdog.SLOT_BYTES, ((i % Watchdog.SLOTS) + 1) * Watchdog.SLOT_BYTES);
    slot.fill(0);
    this.#encoder.encodeInto(line.slice(0, Watchdog.SLOT_BYTES / 2), slot);
    Atomics.store(this.#count, 0, i + 1);
    this.beat();
  }

  stop(): void {
    clearInterval(this.#timer);
    void this.#worker.terminate();
  }
}

const WATCHDOG_CODE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { sab, stallMs, slots, slotBytes } = workerData;
const beat = new BigInt64Array(sab, 0, 1);
const count = new Int32Array(sab, 8, 2);
const bytes = new Uint8Array(sab, 16);
const dec = new TextDecoder();
setInterval(() => {
  const since = Date.now() - Number(Atomics.load(beat, 0));
  if (since < stallMs) return;
  const n = Atomics.load(count, 0);
  const lines = [];
  for (let i = Math.max(0, n - slots); i < n; i++) {
    const s = bytes.subarray((i % slots) * slotBytes, ((i % slots) + 1) * slotBytes);
    const end = s.indexOf(0);
    lines.push(dec.decode(s.slice(0, end < 0 ? s.length : end)));
  }
  writeSync(2, '\\nstorm watchdog: the JS thread has been blocked for ' + since + ' ms (deadlock in a synchronous call?)\\nop log tail (last line = the call that blocked):\\n  ' + lines.join('\\n  ') + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, 250);
`;

// ---------------------------------------------------------------- storm

export type StormMode = 'events' | 'iterate';

export interface StormOptions {
  seed: number;
  log: StormLog;
  /** 'events': messages through the 'message' event; 'iterate': through for await. */
  mode: StormMode;
  /** Most operations (random steps) before the final full run. */
  ops: number;
  /** Stop drawing steps after this many ms (then the final full run). */
  budgetMs?: number;
  /** Out-of-thread stall detection (see Watchdog). */
  watchdog?: Watchdog;
  /** Slack of every wait for done / iterator end, ms (default 8000). */
  slackMs?: number;
}

export interface StormResult {
  seed: number;
  mode: StormMode;
  /** Calls made on replays (start, pause, stop, speed, close, waits for done). */
  operations: number;
  /** Runs checked (start from idle/ended → stop, end or close). */
  runs: number;
  runsEnded: number;
  runsStopped: number;
  runsClosed: number;
  /** Messages checked. */
  messages: number;
  /** Messages that arrived while paused (in flight when pause came). */
  pausedArrivals: number;
  /**
   * Messages (and 'end' events) a replay emitted after its close(): batches
   * queued before it. Counted, not checked here (closeDeliveryRepro is the
   * test of it), so that a storm fails only on its own checks.
   */
  afterClose: number;
  replays: number;
  ms: number;
  failure?: string;
}

type State = 'idle' | 'playing' | 'paused' | 'ended';

interface Run {
  id: number;
  next: number;
  /** Ended by the 'end' event (all records must have come). */
  endedByEvent: boolean;
  /** Fully checked and finished. */
  closed: boolean;
  done: { settled: boolean; rejected: Error | undefined };
  doneDue: boolean;
}

class StormFailure extends Error {}

/** One storm. Never throws for a defect: the result carries `failure`. */
export async function runStorm(opts: StormOptions): Promise<StormResult> {
  const s = new Storm(opts);
  return s.execute();
}

class Storm {
  readonly o: StormOptions;
  readonly rng: Rng;
  readonly n: number;
  readonly t0 = performance.now();
  readonly res: StormResult;
  readonly opLog: string[] = [];
  r!: Replay;
  state: State = 'idle';
  speed: number;
  run: Run | undefined;
  runs: Run[] = [];
  runCount = 0;
  consumer: { replay: Replay; active: boolean; finished: Promise<void> } | undefined;
  readonly closedReplays = new WeakSet<Replay>();
  failure: string | undefined;
  #abort!: () => void;
  readonly aborted = new Promise<void>((r) => (this.#abort = r));
  step = 0;

  constructor(o: StormOptions) {
    this.o = o;
    this.rng = new Rng(o.seed);
    this.n = o.log.records.length;
    this.speed = this.rng.pick(SPEEDS);
    this.res = {
      seed: o.seed,
      mode: o.mode,
      operations: 0,
      runs: 0,
      runsEnded: 0,
      runsStopped: 0,
      runsClosed: 0,
      messages: 0,
      pausedArrivals: 0,
      afterClose: 0,
      replays: 0,
      ms: 0,
    };
  }

  // ---- bookkeeping

  /** A line of the op log; the bracket is the model's state when it was written (before the op's effect). */
  note(what: string): void {
    const at = (performance.now() - this.t0).toFixed(1);
    const line = `#${this.step} +${at}ms ${what} [${this.state} run=${this.run?.id ?? '-'} next=${this.run?.next ?? '-'} speed=${fmtSpeed(this.speed)}]`;
    this.opLog.push(line);
    if (this.opLog.length > 200) this.opLog.splice(0, 100);
    this.o.watchdog?.note(`seed=${this.o.seed} ${this.o.mode} ${line}`);
  }

  fail(message: string): void {
    if (this.failure !== undefined) return;
    let alive = '?';
    let pending = '?';
    try {
      alive = String(this.r.isAlive());
      pending = String(this.r.isDataPending());
    } catch {
      // closed
    }
    this.failure =
      `storm seed=${this.o.seed} mode=${this.o.mode} step ${this.step}: ${message}\n` +
      `  state: model=${this.state} run=${this.run?.id ?? '-'} next seq=${this.run?.next ?? '-'} of ${this.n} ` +
      `speed=${fmtSpeed(this.speed)} replay#${this.res.replays} isAlive=${alive} isDataPending=${pending} ` +
      `consumer=${this.consumer?.active ?? false}\n` +
      `  op log tail:\n    ${this.opLog.slice(-25).join('\n    ')}`;
    this.#abort();
  }

  check(cond: boolean, message: () => string): void {
    if (!cond) {
      this.fail(message());
      throw new StormFailure();
    }
  }

  op(what: string): void {
    this.res.operations++;
    this.note(what);
  }

  // ---- runs

  beginRun(): void {
    const run: Run = {
      id: ++this.runCount,
      next: 0,
      endedByEvent: false,
      closed: false,
      done: { settled: false, rejected: undefined },
      doneDue: false,
    };
    const d = run.done;
    this.r.done.then(
      () => (d.settled = true),
      (err: Error) => {
        d.settled = true;
        d.rejected = err;
      },
    );
    this.run = run;
    this.runs.push(run);
    this.res.runs++;
  }

  /** The run is over (stop, end, close): its done must settle. */
  closeRun(how: 'stopped' | 'ended' | 'closed'): void {
    const run = this.run;
    if (!run || run.closed) return;
    if (how === 'ended') {
      this.check(run.next === this.n, () => `run ${run.id} ended after ${run.next} of ${this.n} messages (lost ${this.n - run.next})`);
      this.res.runsEnded++;
    } else if (how === 'stopped') this.res.runsStopped++;
    else this.res.runsClosed++;
    run.closed = true;
    run.doneDue = true;
    this.note(`run ${run.id} ${how} after ${run.next} messages`);
  }

  /** After a macrotask: every finished run's done has settled, none rejected. */
  checkDone(): void {
    for (const run of this.runs) {
      if (!run.doneDue) continue;
      this.check(run.done.settled, () => `done of run ${run.id} did not settle after it ${run.endedByEvent ? 'ended' : 'was stopped/closed'}`);
      this.check(!run.done.rejected, () => `done of run ${run.id} rejected: ${run.done.rejected}`);
    }
    this.runs = this.runs.filter((r) => !r.doneDue);
  }

  // ---- deliveries

  accepting(): boolean {
    if (this.state === 'playing' || this.state === 'paused') return true;
    // Iteration drains what was queued before the end.
    return this.o.mode === 'iterate' && this.state === 'ended' && !!this.run?.endedByEvent && !this.run.closed;
  }

  onMessage(replay: Replay, m: Message): void {
    if (this.failure !== undefined) return;
    if (this.closedReplays.has(replay)) {
      this.res.afterClose++;
      return;
    }
    try {
      this.check(replay === this.r, () => `message from a replay no longer under test (seq ${(m.payload as StormPayload)?.seq})`);
      const run = this.run;
      const p = m.payload as StormPayload;
      this.check(!!run && this.accepting(), () => `message seq ${p?.seq} outside a run (model state ${this.state})`);
      const expected = this.o.log.records[run!.next];
      this.check(
        p !== null && typeof p === 'object' && p.seq === run!.next,
        () =>
          `run ${run!.id}: got seq ${p?.seq}, expected ${run!.next}` +
          (typeof p?.seq === 'number' ? (p.seq < run!.next ? ' (duplicate or replayed)' : ` (lost ${p.seq - run!.next})`) : ''),
      );
      this.check(m.topic === p.topic, () => `run ${run!.id}: seq ${p.seq} has topic ${JSON.stringify(m.topic)}, its payload says ${JSON.stringify(p.topic)}`);
      this.check(m.type === p.type, () => `run ${run!.id}: seq ${p.seq} has type ${JSON.stringify(m.type)}, its payload says ${JSON.stringify(p.type)}`);
      this.check(m.elapsedTime === p.t, () => `run ${run!.id}: seq ${p.seq} has elapsedTime ${m.elapsedTime}, its payload says ${p.t}`);
      this.check(p.t === expected?.t && p.type === expected.type, () => `run ${run!.id}: seq ${p.seq} payload differs from the log`);
      run!.next++;
      this.res.messages++;
      if (this.state === 'paused') this.res.pausedArrivals++;
    } catch (e) {
      if (!(e instanceof StormFailure)) this.fail(`message check threw: ${e}`);
    }
  }

  onEnd(replay: Replay): void {
    if (this.failure !== undefined) return;
    if (this.closedReplays.has(replay)) {
      this.res.afterClose++;
      return;
    }
    try {
      this.check(replay === this.r, () => `'end' from a replay no longer under test`);
      this.check(
        this.state === 'playing' || this.state === 'paused',
        () => `'end' event while the model is ${this.state} (no run playing: a second 'end'?)`,
      );
      this.state = 'ended';
      this.run!.endedByEvent = true;
      this.note(`'end' event`);
      // Iteration: the queue drains after 'end'; checked when the loop returns.
      if (this.o.mode === 'events') this.closeRun('ended');
    } catch (e) {
      if (!(e instanceof StormFailure)) this.fail(`end check threw: ${e}`);
    }
  }

  open(): void {
    const r = new Replay(this.o.log.dir, { speed: this.speed });
    this.r = r;
    this.res.replays++;
    this.state = 'idle';
    if (this.o.mode === 'events') r.on('message', (m) => this.onMessage(r, m));
    r.on('end', () => this.onEnd(r));
    r.on('error', (err) => this.fail(`'error' event: ${err}`));
    this.note(`new Replay(dir, { speed: ${fmtSpeed(this.speed)} })`);
  }

  /** Iterate `r` with for await; the loop starts the replay when idle/ended. */
  launchConsumer(): void {
    const replay = this.r;
    const c = { replay, active: true, finished: Promise.resolve() };
    this.consumer = c;
    c.finished = (async () => {
      try {
        for await (const m of replay) this.onMessage(replay, m);
      } catch (err) {
        this.fail(`for await threw: ${err}`);
      } finally {
        c.active = false;
      }
      if (this.failure !== undefined || this.closedReplays.has(replay)) return;
      this.note('for await loop returned');
      try {
        this.check(
          this.state === 'idle' || this.state === 'ended',
          () => `for await loop returned while the model is ${this.state}`,
        );
        if (this.state === 'ended' && this.run && !this.run.closed) this.closeRun('ended');
      } catch (e) {
        if (!(e instanceof StormFailure)) this.fail(`iterator check threw: ${e}`);
      }
    })();
  }

  /** Wait for `p` (or fail after `ms`, or return at once when the storm failed). */
  async within(p: Promise<unknown>, ms: number, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
    const outcome = await Promise.race([p.then(() => 'ok' as const), timeout, this.aborted.then(() => 'aborted' as const)]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.check(false, () => `${what} did not settle within ${ms} ms (deadlock or stall?)`);
    if (outcome === 'aborted') throw new StormFailure();
  }

  /** The remaining time of the current run at the current speed, ms. */
  remainingMs(): number {
    const next = this.run?.next ?? 0;
    const from = this.o.log.records[next]?.t ?? this.o.log.duration;
    const left = this.o.log.duration - (this.state === 'idle' || this.state === 'ended' ? 0 : from);
    return this.speed === Infinity ? 0 : (left / this.speed) * 1000;
  }

  // ---- operations

  /** Iteration: after an end, wait for the loop to drain and return. */
  needsSettle(): boolean {
    return this.o.mode === 'iterate' && this.state === 'ended' && !!this.consumer?.active;
  }

  /**
   * Iteration: after an end, wait for the loop to drain and return. Only
   * awaited when needed: an await that resumes in a microtask could land
   * while the loop is half way through returning.
   */
  async settleConsumer(): Promise<void> {
    if (!this.needsSettle()) return;
    await this.within(this.consumer!.finished, this.o.slackMs ?? 8000, 'the for await loop after the end');
    await macrotask();
  }

  doStart(viaIterator: boolean): void {
    const fresh = this.state === 'idle' || this.state === 'ended';
    if (this.state === 'ended') this.closeRun('ended'); // (events mode closed it at 'end')
    if (this.o.mode === 'iterate' && fresh && !this.consumer?.active) {
      if (viaIterator) {
        this.op('for await (starts the replay)');
        this.launchConsumer();
        this.state = 'playing';
        this.beginRun();
        const again = this.r.start();
        this.op(`start() -> ${again} (right after the loop started it)`);
        this.check(again === false, () => 'the for await loop did not start the replay');
        return;
      }
      const ok = this.r.start();
      this.op(`start() -> ${ok}`);
      this.check(ok, () => `start() from ${this.state} returned false`);
      this.state = 'playing';
      this.beginRun();
      this.launchConsumer();
      this.note('for await launched');
      return;
    }
    const expected = this.state !== 'playing';
    const ok = this.r.start();
    this.op(`start() -> ${ok}`);
    this.check(ok === expected, () => `start() returned ${ok} in state ${this.state}`);
    if (fresh) {
      this.state = 'playing';
      this.beginRun();
    } else this.state = 'playing';
  }

  doPause(): void {
    const expected = this.state === 'playing';
    const ok = this.r.pause();
    this.op(`pause() -> ${ok}`);
    this.check(ok === expected, () => `pause() returned ${ok} in state ${this.state}`);
    if (ok) this.state = 'paused';
  }

  doStop(): void {
    const expected = this.state === 'playing' || this.state === 'paused';
    const ok = this.r.stop();
    this.op(`stop() -> ${ok}`);
    this.check(ok === expected, () => `stop() returned ${ok} in state ${this.state}`);
    if (expected) this.closeRun('stopped');
    else if (this.state === 'ended') this.closeRun('ended');
    this.state = 'idle';
  }

  doSpeed(v: number): void {
    this.r.speed = v;
    this.speed = v;
    this.op(`speed = ${fmtSpeed(v)}`);
    const back = this.r.speed;
    this.check(back === v, () => `speed reads ${back} after setting ${v}`);
  }

  /**
   * step(n) ('message' events only) while paused or idle: exactly the next n
   * messages, then paused. Playing, it rejects — unless the run has just
   * ended (its 'end' still on the way): then it resolves, as after the end.
   */
  async doStep(n: number): Promise<void> {
    if (this.state === 'playing') {
      this.op(`step(${n}) while playing`);
      const outcome = await this.r.step(n).then(
        (): 'resolved' => 'resolved',
        (err: Error) => err,
      );
      if (outcome === 'resolved') {
        await this.within(this.r.done, this.o.slackMs ?? 8000, `the end, after step() while playing resolved`);
        await macrotask();
        // (The 'end' event moved the model on meanwhile.)
        this.check(this.modelState() === 'ended', () => `step() while playing resolved, and the run did not end (${this.state})`);
      } else {
        this.check(/pause\(\) first/.test(outcome.message), () => `step() while playing rejected with ${outcome.message}`);
      }
      return;
    }
    if (this.state === 'ended') {
      // After the end there is nothing to step.
      this.op(`step(${n}) after the end`);
      await this.within(this.r.step(n), this.o.slackMs ?? 8000, `step(${n}) after the end`);
      return;
    }
    if (this.state === 'idle') this.beginRun();
    // Messages of a paused run still on their way arrive first.
    await sleep(10);
    await macrotask();
    if (this.failure !== undefined) return;
    const before = this.run!.next;
    const p = this.r.step(n);
    this.op(`step(${n})`);
    this.state = 'paused';
    await this.within(p, this.o.slackMs ?? 8000, `step(${n})`);
    await macrotask();
    if (this.failure !== undefined || this.modelState() === 'ended') return;
    const expected = Math.min(this.n, before + n);
    this.check(this.run!.next === expected, () => `step(${n}) from seq ${before} delivered up to ${this.run!.next}, expected ${expected}`);
  }

  /** The model's state now (events change it while an operation awaits). */
  modelState(): State {
    return this.state;
  }

  /** burst(n) while playing: at once, then on; nothing lost (the message checks). */
  async doBurst(n: number): Promise<void> {
    if (this.state !== 'playing') return;
    await this.r.burst(n);
    this.op(`burst(${n})`);
  }

  async doWaitDone(): Promise<void> {
    if (this.state === 'paused') this.doStart(false);
    const ms = (this.o.slackMs ?? 8000) + 3 * this.remainingMs();
    this.op(`await done (timeout ${Math.round(ms)} ms)`);
    await this.within(this.r.done, ms, 'done');
    await macrotask();
    this.note('done settled');
    if (this.run && !this.run.closed) {
      this.check(this.state === 'ended', () => `done resolved while the model is ${this.state}`);
    }
    if (this.needsSettle()) await this.settleConsumer();
    this.check(!this.run || this.run.closed || this.state !== 'ended', () => `run ${this.run?.id} ended but the for await loop did not return`);
  }

  async doReopen(): Promise<void> {
    const old = this.r;
    const c = this.consumer;
    old.close();
    this.closedReplays.add(old);
    this.op('close()');
    if (this.state === 'ended') this.closeRun('ended');
    else this.closeRun('closed');
    this.state = 'idle';
    if (c?.active) {
      await this.within(c.finished, this.o.slackMs ?? 8000, 'the for await loop after close()');
    }
    this.consumer = undefined;
    await macrotask();
    this.checkDone();
    this.open();
  }

  isDataPendingCheck(): void {
    const pending = this.r.isDataPending();
    this.check(pending === (this.state !== 'ended'), () => `isDataPending() is ${pending} in state ${this.state}`);
    const alive = this.r.isAlive();
    this.check(!alive || this.state === 'playing', () => `isAlive() is true in state ${this.state}`);
  }

  async execute(): Promise<StormResult> {
    try {
      this.open();
      const budget = this.o.budgetMs ?? Infinity;
      for (this.step = 1; this.step <= this.o.ops && performance.now() - this.t0 < budget; this.step++) {
        // A fixed number of draws per step keeps the op sequence a function of the seed.
        const kind = this.rng.next();
        const arg = this.rng.next();
        const waitDraw = this.rng.next();
        const waitMs = Math.floor(this.rng.next() * 21);
        if (this.needsSettle()) await this.settleConsumer();
        this.isDataPendingCheck();
        if (kind < 0.26) this.doStart(arg < 0.5);
        else if (kind < 0.4) this.doPause();
        else if (kind < 0.5) this.doStop();
        else if (kind < 0.66) this.doSpeed(SPEEDS[Math.floor(arg * SPEEDS.length)]!);
        else if (kind < 0.74) {
          // The quick sequence that once mislabelled topics.
          this.note('burst: start(); stop(); start()');
          this.doStart(arg < 0.5);
          this.doStop();
          this.doStart(arg < 0.25);
        } else if (kind < 0.77) await this.doWaitDone();
        else if (kind < 0.79) await this.doReopen();
        // Steps and bursts with 'message' events (the iteration's model
        // cannot tell which run a loop that is returning belongs to).
        else if (kind < 0.84 && this.o.mode === 'events') await this.doStep(1 + Math.floor(arg * 8));
        else if (kind < 0.87 && this.o.mode === 'events') await this.doBurst(1 + Math.floor(arg * 20));
        // else: only the wait below
        if (waitDraw < 0.5) {
          await sleep(waitMs);
          this.checkDone();
        }
        if (this.failure !== undefined) break;
      }
      if (this.failure === undefined) {
        // Final full run at full speed: it must reach the end with every message.
        this.step = this.o.ops + 1;
        this.note('final: speed inf, play to the end');
        this.doSpeed(Infinity);
        await macrotask();
        if (this.needsSettle()) await this.settleConsumer();
        this.doStart(false);
        await this.doWaitDone();
        this.check(this.state === 'ended', () => `final run did not end (model ${this.state})`);
        this.check(!!this.run?.closed && this.run.endedByEvent, () => `final run ${this.run?.id} not checked to its end`);
        this.r.close();
        this.closedReplays.add(this.r);
        this.op('close()');
        if (this.consumer?.active) await this.within(this.consumer.finished, this.o.slackMs ?? 8000, 'the for await loop after close()');
        await macrotask();
        this.checkDone();
      }
    } catch (e) {
      if (!(e instanceof StormFailure)) this.fail(`storm threw: ${(e as Error)?.stack ?? e}`);
    } finally {
      try {
        this.r?.close();
      } catch {
        // already failed
      }
    }
    this.res.ms = performance.now() - this.t0;
    if (this.failure !== undefined) this.res.failure = this.failure;
    return this.res;
  }
}

// ---------------------------------------------------------------- the known defect

export interface CycleResult {
  speed: number;
  repetitions: number;
  /** Repetitions where some message carried another topic than its own. */
  mislabelled: number;
  /** Repetitions with a loss, duplicate or wrong order. */
  broken: number;
  messages: number;
  firstBad?: string;
}

/**
 * The known defect, exactly: `r.start(); r.stop(); r.start()` on a fresh
 * replay of a log with topics cycling a/b/c; every message must carry its
 * own topic (seq % 3). Each repetition uses a fresh Replay.
 */
export async function cycleRepro(path: string, n: number, speed: number, repetitions: number, timeoutMs = 10_000): Promise<CycleResult> {
  const out: CycleResult = { speed, repetitions, mislabelled: 0, broken: 0, messages: 0 };
  for (let k = 0; k < repetitions; k++) {
    const r = new Replay(path, { speed });
    const got: Message[] = [];
    r.on('message', (m) => got.push(m));
    r.start();
    r.stop();
    r.start();
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      r.done.then(() => true),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    r.close();
    out.messages += got.length;
    const seqs = got.map((m) => (m.payload as { seq: number }).seq);
    if (!settled || seqs.length !== n || seqs.some((s, i) => s !== i)) {
      out.broken++;
      out.firstBad ??= `speed ${fmtSpeed(speed)} repetition ${k + 1}: ${settled ? '' : 'done never settled; '}${seqs.length} of ${n} messages, seqs ${seqs.slice(0, 5).join(',')}…`;
    }
    const bad = got.filter((m) => m.topic !== TOPICS[(m.payload as { seq: number }).seq % 3]);
    if (bad.length > 0) {
      out.mislabelled++;
      const eg = bad
        .slice(0, 3)
        .map((m) => {
          const seq = (m.payload as { seq: number }).seq;
          return `seq ${seq} topic ${JSON.stringify(m.topic)} (expected ${JSON.stringify(TOPICS[seq % 3])})`;
        })
        .join('; ');
      out.firstBad ??= `speed ${fmtSpeed(speed)} repetition ${k + 1}: ${bad.length} of ${got.length} messages mislabelled, e.g. ${eg}`;
    }
  }
  return out;
}

// ---------------------------------------------------------------- close() delivering

export interface CloseResult {
  speed: number;
  repetitions: number;
  /** Repetitions where 'message' events came after close() returned. */
  leaked: number;
  /** Messages emitted after close() in all repetitions. */
  messages: number;
  /** The same with stop() in place of close(), for comparison (stop drops them). */
  leakedAfterStop: number;
}

const spin = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

/**
 * Found by the storm: `r.start()`, the JS thread busy for `busyMs` (so the
 * engine's batches queue up for it), `r.close()`: the queued batches are
 * still emitted as 'message' events after close() returned. stop() in the
 * same place drops them (batches of a rewound run are discarded).
 */
export async function closeDeliveryRepro(path: string, speed: number, repetitions: number, busyMs = 20): Promise<CloseResult> {
  const out: CloseResult = { speed, repetitions, leaked: 0, messages: 0, leakedAfterStop: 0 };
  for (const how of ['close', 'stop'] as const) {
    for (let k = 0; k < repetitions; k++) {
      const r = new Replay(path, { speed });
      let after = false;
      let count = 0;
      r.on('message', () => {
        if (after) count++;
      });
      r.start();
      spin(busyMs);
      if (how === 'close') r.close();
      else r.stop();
      after = true;
      await sleep(30);
      r.close();
      if (count > 0) {
        if (how === 'close') {
          out.leaked++;
          out.messages += count;
        } else out.leakedAfterStop++;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- 'end' twice

export interface DoubleEndResult {
  speed: number;
  pause: boolean;
  start: boolean;
  messages: number;
  ends: number;
}

/**
 * Found while writing the storm's oracle: the engine reaches the end while
 * the JS thread is busy (Replay still 'playing'); `pause()` then `start()`
 * resumes a scheduler whose run has ended, which reports the end again:
 * two 'end' events for one run.
 */
export async function doubleEndRepro(path: string, speed: number, busyMs = 100): Promise<DoubleEndResult> {
  const r = new Replay(path, { speed });
  let messages = 0;
  let ends = 0;
  r.on('message', () => messages++);
  r.on('end', () => ends++);
  r.start();
  spin(busyMs); // the engine plays the whole (short) log meanwhile
  const pause = r.pause();
  const start = r.start();
  await sleep(100);
  await r.done;
  r.close();
  return { speed, pause, start, messages, ends };
}

// ---------------------------------------------------------------- reporting

export interface Totals {
  storms: number;
  failed: number;
  operations: number;
  runs: number;
  runsEnded: number;
  runsStopped: number;
  runsClosed: number;
  messages: number;
  replays: number;
}

export function totals(results: readonly StormResult[]): Totals {
  const t: Totals = { storms: 0, failed: 0, operations: 0, runs: 0, runsEnded: 0, runsStopped: 0, runsClosed: 0, messages: 0, replays: 0 };
  for (const r of results) {
    t.storms++;
    if (r.failure !== undefined) t.failed++;
    t.operations += r.operations;
    t.runs += r.runs;
    t.runsEnded += r.runsEnded;
    t.runsStopped += r.runsStopped;
    t.runsClosed += r.runsClosed;
    t.messages += r.messages;
    t.replays += r.replays;
  }
  return t;
}

export function summaryLine(results: readonly StormResult[], ms: number): string {
  const t = totals(results);
  return (
    `storm: ${t.storms} storms (${t.failed} failed), ${t.operations} operations, ` +
    `${t.runs} runs (${t.runsEnded} to the end, ${t.runsStopped} stopped, ${t.runsClosed} closed), ` +
    `${t.messages} messages checked, ${t.replays} replays, ${(ms / 1000).toFixed(1)} s`
  );
}

export function resultLine(r: StormResult): string {
  return (
    `seed ${r.seed} ${r.mode}: ${r.operations} ops, ${r.runs} runs (${r.runsEnded} ended, ${r.runsStopped} stopped, ${r.runsClosed} closed), ` +
    `${r.messages} messages (${r.pausedArrivals} while paused; ${r.afterClose} ignored after close()), ${r.replays} replays, ${(r.ms / 1000).toFixed(2)} s` +
    (r.failure !== undefined ? ' FAILED' : '')
  );
}
