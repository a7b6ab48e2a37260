// Replay: a log played back with its original timing. The playback itself
// is core's Player (native/NativePlayer); this layer adds events, async
// iteration and a done promise, nothing of timing.
import { EventEmitter } from 'node:events';
import { BUFFER_OPTION_NAMES, JsPump, ringOptions, type BufferOptions } from './buffer.js';
import { BatchReceiver, KeepAlive, weakCallback } from './delivery.js';
import { callNative, ReplayStateError } from './errors.js';
import { BatchDecoder, streamFormatsOf, type DeliveryOptions, type Message } from './message.js';
import { native, type NativePlayer } from './native.js';
import { logStreamsOf, type LogStream } from './reader.js';
import {
  SCHEDULE_OPTION_NAMES,
  deliveryOptions,
  type PendingDeliveries,
  type ReplayStats,
  type ScheduleOptions,
} from './scheduler.js';
import { checkOnError, checkOptions, checkPositiveInteger, checkSpeed, optionNames, pick } from './validate.js';
import { PLAYBACK_OPTION_NAMES, playbackOptions, progressIntervalMs, type PlaybackOptions } from './playback.js';
import { INPUT_OPTION_NAMES, openInputs, type InputOptions, type ReplaySource } from './inputs.js';
import { isCaptureOnly } from './pcap.js';
import type { UdpStats } from './net.js';

export interface ReplayOptions extends ScheduleOptions, BufferOptions, InputOptions, PlaybackOptions {
  /** Aborting it stops and closes the replay (`done` resolves). */
  signal?: AbortSignal;
}

/** Where a replay is (the 'progress' event, and progress()). Times in seconds. */
export interface Progress {
  /** 'delayed' while waiting out `delay` or `startAt` before a pass's first message. */
  state: 'idle' | 'playing' | 'delayed' | 'paused' | 'ended' | 'closed';
  /** The log time reached in the current pass; null before the first message. */
  position: number | null;
  /** The time reported there (continuing across loops with `continuousTime`). */
  time: number | null;
  /** Where each pass starts and ends (log time), when known. */
  start: number | null;
  end: number | null;
  /** (position − start) / (end − start), 0 to 1; null when unknown. */
  fraction: number | null;
  /** The pass playing (from 0), and how many there are (null: for ever). */
  loop: number;
  loops: number | null;
  /** Messages delivered in this run, and dropped under `lag: 'drop'`. */
  delivered: number;
  dropped: number;
  /** The speed asked for, and the one achieved since the last report (null until measured). */
  speed: number;
  achievedSpeed: number | null;
  /** Lateness of the last message handed over, seconds. */
  lag: number;
}

export interface ReplayEvents {
  message: [Message];
  end: [];
  error: [Error];
  /** UDP sends failed (see ScheduleEvents). */
  udpFailures: [UdpStats];
  /** A loop begins: `count` loops are complete (the pass now playing, from 0). */
  loop: [count: number];
  /** A clock tick (the `clock` option): the logical time, seconds. */
  clock: [time: number];
  /** Every `progressInterval` while playing or paused, also through sparse stretches. */
  progress: [Progress];
  /** A step, playUntil or advance reached its goal: the replay is paused. */
  paused: [];
}

const REPLAY_OPTION_NAMES = optionNames<ReplayOptions>()(
  ...SCHEDULE_OPTION_NAMES,
  ...BUFFER_OPTION_NAMES,
  ...INPUT_OPTION_NAMES,
  ...PLAYBACK_OPTION_NAMES,
  'signal',
);

type State = 'idle' | 'playing' | 'paused' | 'ended' | 'closed';

export class Replay extends EventEmitter<ReplayEvents> implements AsyncIterable<Message>, AsyncDisposable {
  readonly #native: NativePlayer;
  /** Feeds the player from a reader written in JS. */
  readonly #pump: JsPump | undefined;
  readonly #receiver: BatchReceiver;
  readonly #keepAlive = new KeepAlive(this);
  #state: State = 'idle';
  #done: Deferred | undefined;
  /**
   * Messages waiting for the async iterator, and per batch the messages of
   * it still queued and its ack. A batch is acknowledged once its last
   * message is taken, so what the iterator holds is what the engine counts
   * as pending: at most 8192 messages and 8 MiB (see maxPendingBatches).
   */
  #iterQueue: Message[] = [];
  #iterBatches: { left: number; ack: () => void }[] = [];
  #iterWaiter: (() => void) | undefined;
  #iterating = false;
  #error: Error | undefined;
  /** Stops listening to the abort signal (set when there is one). */
  #unlisten: (() => void) | undefined;
  /** Promises of step/playUntil/advance, settled when the replay pauses or ends. */
  #goals: Deferred[] = [];
  readonly #progressMs: number;
  #progressTimer: NodeJS.Timeout | undefined;
  /** The last progress sample: hrtime ns and reported time, for the achieved speed. */
  #lastSample: { at: number; time: number } | undefined;
  #achievedSpeed: number | null = null;
  readonly #virtual: boolean;
  /**
   * The streams read natively (type, files, header, encoding, schema, time
   * base), in stream order; empty when a reader written in JS is among the inputs.
   */
  readonly streams: readonly LogStream[];

  /**
   * @param source a log path (file, split-set prefix or directory), a
   *   ReadFile/ReadDirectory, any reader with read(), isDataPending() and
   *   reset() — or an array of them, merged in time order (ties by input
   *   order, then record order; a directory stays one input).
   */
  constructor(source: ReplaySource, options?: ReplayOptions) {
    super();
    const opts = checkOptions(options, 'options', REPLAY_OPTION_NAMES) as ReplayOptions;
    const playback = playbackOptions(pick(opts, PLAYBACK_OPTION_NAMES) as PlaybackOptions);
    this.#progressMs = progressIntervalMs(opts.progressInterval);
    this.#virtual = playback.virtualTime === true;
    const { reader, nativeReader } = openInputs(source, pick(opts, INPUT_OPTION_NAMES));
    const signal = opts.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`'signal' must be an AbortSignal, got ${typeof signal}`);
    }
    const schedule = pick(opts, SCHEDULE_OPTION_NAMES) as ScheduleOptions;
    // A capture's payloads are raw bytes, not msgpack: given as
    // payloadBytes, and sent as they are, unless asked otherwise.
    if (nativeReader && isCaptureOnly(nativeReader)) {
      schedule.decode ??= false;
      schedule.rawPayload ??= true;
      if (schedule.udp !== undefined && typeof schedule.udp === 'object' && schedule.udp !== null) {
        schedule.udp = { ...schedule.udp, raw: schedule.udp.raw ?? true };
      }
    }
    const nativeOptions = {
      buffer: ringOptions(pick(opts, BUFFER_OPTION_NAMES)),
      schedule: deliveryOptions(schedule, schedule.speed === undefined ? undefined : checkSpeed(schedule.speed)),
      playback,
    };
    this.streams = nativeReader ? logStreamsOf(nativeReader) : [];
    const streamTypes: (string | null)[] = nativeReader ? nativeReader.streams.map((s) => s.messageType ?? null) : [];
    const decoder = new BatchDecoder(
      streamTypes,
      { ...(schedule as DeliveryOptions), onError: checkOnError(schedule.onError), virtualTime: this.#virtual },
      nativeReader ? streamFormatsOf(nativeReader.streams) : [],
    );
    this.#receiver = new BatchReceiver(() => this.#native, decoder, {
      messages: (messages, ack) => this.#onMessages(messages, ack),
      // The run ends here: the engine stops (and rewinds) at once.
      undecodable: () => callNative(() => this.#native.stop()),
      ended: (event, err) => this.#onEnded(event, err),
      paused: () => this.#onPaused(),
      timeline: (event, value) => {
        if (event === 'loop') this.emit('loop', value);
        else if (this.listenerCount('clock') > 0) this.emit('clock', value);
      },
      ...(nativeOptions.schedule.udp !== undefined && {
        udpFailures: (s: UdpStats) => {
          if (this.listenerCount('udpFailures') > 0) this.emit('udpFailures', s);
        },
      }),
      readerError: () => this.#pump?.error,
    });
    const onBatch = weakCallback(this.#receiver);
    this.#native = callNative(() =>
      nativeReader
        ? native.NativePlayer.fromReader(nativeReader, nativeOptions, onBatch)
        : native.NativePlayer.external(nativeOptions, onBatch),
    );
    if (!nativeReader) this.#pump = new JsPump(reader, this.#native, streamTypes, playback.backfill === true);
    if (signal !== undefined) {
      if (signal.aborted) this.close();
      else {
        const onAbort = () => this.close();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#unlisten = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /**
   * Play, or resume after pause(); after the end, play again from the
   * start. False if already playing. With `startPaused`, the first start()
   * leaves the replay paused on its first message.
   */
  start(): boolean {
    this.#checkOpen();
    if (this.#state === 'playing') return false;
    if (this.#state !== 'paused') this.#done ??= new Deferred();
    this.#error = undefined;
    if (this.#state === 'ended') {
      // This replay has seen the end: play again from the start. (A run the
      // engine has ended but whose end is still on its way is not restarted:
      // native start() does nothing then, and the end follows.)
      this.#pump?.rewind();
      callNative(() => this.#native.restart());
    } else callNative(() => this.#native.start());
    this.#pump?.start();
    // Resolves steps still delivering: playing delivers the rest.
    this.#settleGoals();
    if (this.#native.state === 'paused') {
      this.#state = 'paused';
      this.#keepAlive.hold(false);
    } else {
      this.#state = 'playing';
      this.#keepAlive.hold(true);
    }
    this.#startProgress();
    return true;
  }

  /**
   * Paused (or not started): deliver the next `n` messages at once and stay
   * paused. Resolves once they are emitted. A state error while playing.
   */
  step(n = 1): Promise<void> {
    const count = checkPositiveInteger(n, 'n', Number.MAX_SAFE_INTEGER);
    return this.#goal(() => this.#native.step(count), 'paused');
  }

  /**
   * Deliver the next `n` messages as fast as possible. Playing, the timing
   * then goes on from the last of them (re-anchored, not catching up);
   * paused, it stays paused (a step). Resolves once the burst went out when
   * paused; at once when playing.
   */
  burst(n: number): Promise<void> {
    const count = checkPositiveInteger(n, 'n', Number.MAX_SAFE_INTEGER);
    if (this.#state === 'playing') {
      this.#checkOpen();
      callNative(() => this.#native.burst(count));
      return Promise.resolve();
    }
    return this.step(count);
  }

  /**
   * Deliver every message up to `time` (seconds, as reported: continuous
   * across loops with `continuousTime`) at the current speed, then pause
   * there — nothing is skipped. Resolves when paused (or at the end).
   */
  playUntil(time: number): Promise<void> {
    const t = checkSeconds(time, 'time');
    return this.#goal(() => this.#native.playUntil(t), 'playing');
  }

  /** With `time: 'virtual'`: deliver everything up to `time` at once, and leave the virtual clock there, paused. */
  advanceTo(time: number): Promise<void> {
    const t = checkSeconds(time, 'time');
    return this.#goal(() => this.#native.advanceTo(t), 'playing');
  }

  /** With `time: 'virtual'`: advance the virtual clock by `dt` seconds (see advanceTo). */
  advanceBy(dt: number): Promise<void> {
    const d = checkSeconds(dt, 'dt');
    return this.#goal(() => this.#native.advanceBy(d), 'playing');
  }

  /** Where the replay is now. */
  progress(): Progress {
    const p = callNative(() => this.#native.progress());
    const now = Number(process.hrtime.bigint());
    if (p.time !== null && p.time !== undefined && p.state === 'playing' && !this.#virtual) {
      const last = this.#lastSample;
      if (last && now - last.at >= 50e6) {
        this.#achievedSpeed = ((p.time - last.time) * 1e9) / (now - last.at);
        this.#lastSample = { at: now, time: p.time };
      } else if (!last) this.#lastSample = { at: now, time: p.time };
    } else this.#lastSample = undefined;
    const start = p.start ?? null;
    const end = p.end ?? null;
    const position = p.position ?? null;
    const fraction =
      position === null || start === null || end === null
        ? null
        : end > start
          ? Math.min(1, Math.max(0, (position - start) / (end - start)))
          : 1;
    return {
      state: p.delayed ? 'delayed' : (p.state as Progress['state']),
      position,
      time: p.time ?? null,
      start,
      end,
      fraction,
      loop: p.pass,
      loops: p.passes ?? null,
      delivered: p.delivered,
      dropped: p.dropped,
      speed: this.#native.speed,
      achievedSpeed: this.#achievedSpeed,
      lag: p.lag,
    };
  }

  /** Freeze the replay where it is; start() continues at once. False if not playing. */
  pause(): boolean {
    this.#checkOpen();
    if (this.#state !== 'playing') return false;
    callNative(() => this.#native.pause());
    this.#state = 'paused';
    this.#keepAlive.hold(false);
    this.#settleGoals();
    return true;
  }

  /** Stop and rewind to the first message. False if it was neither playing nor paused. */
  stop(): boolean {
    this.#checkOpen();
    const was = this.#state === 'playing' || this.#state === 'paused';
    callNative(() => this.#native.stop());
    this.#pump?.rewind();
    this.#dropQueued();
    this.#state = 'idle';
    this.#keepAlive.hold(false);
    this.#settleGoals();
    this.#stopProgress();
    this.#finish();
    return was;
  }

  /**
   * Go to `time` (seconds, as the log's elapsed times): the next message is
   * the first at or after it, delivered at once, and the timing goes on from
   * there; what was queued is dropped. A time before the first message or
   * after the last one goes to that message. Playing, the replay plays on;
   * paused, it stays paused; otherwise the next start() plays from there.
   */
  seek(time: number): void {
    this.#checkOpen();
    if (typeof time !== 'number' || Number.isNaN(time)) {
      throw new TypeError(`seek: 'time' must be a number of seconds, got ${typeof time === 'number' ? 'NaN' : typeof time}`);
    }
    // Infinite times clamp to the log's ends like any time outside it.
    let t = Math.max(-9e9, Math.min(9e9, time));
    // A reader written in JS has no index: the pump finds where t falls.
    if (this.#pump) t = this.#pump.clampTarget(t);
    callNative(() => this.#native.seek(t));
    this.#dropQueued();
    this.#settleGoals();
    if (this.#pump) {
      this.#pump.seek(t);
      if (this.#state === 'playing' || this.#state === 'paused') this.#pump.start();
    }
    if (this.#state === 'ended') this.#state = 'idle';
  }

  /** True while playing. */
  isAlive(): boolean {
    return this.#state === 'playing' && this.#native.state === 'playing';
  }

  /** True while messages remain to be played in this run. */
  isDataPending(): boolean {
    return this.#state !== 'ended' && this.#state !== 'closed';
  }

  get speed(): number {
    return this.#native.speed;
  }

  set speed(value: number) {
    const speed = checkSpeed(value);
    callNative(() => {
      this.#native.speed = speed;
    });
  }

  /** Statistics of the current run (lateness in seconds; see ReplayStats). */
  stats(): ReplayStats {
    return { ...callNative(() => this.#native.stats()), skipped: this.#receiver.decoder.skipped };
  }

  /** What JS holds unconsumed now: batches, messages and bytes. */
  pending(): PendingDeliveries {
    return callNative(() => this.#native.pending());
  }

  /** Statistics of the UDP sink (with the `udp` option), else null. */
  udpStats(): UdpStats | null {
    return callNative(() => this.#native.udpStats());
  }

  /** Resolves when the replay ends (or is stopped or closed); rejects on a replay error. */
  get done(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (!this.#done) return Promise.resolve();
    return this.#done.promise;
  }

  /** Stop everything and free the native threads; safe to call twice. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#unlisten?.();
    this.#receiver.closed = true;
    this.#pump?.stop();
    this.#keepAlive.hold(false);
    callNative(() => this.#native.close());
    this.#state = 'closed';
    this.#settleGoals();
    this.#stopProgress();
    this.#finish();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /**
   * Iterate the messages as they are played; starts the replay if needed.
   * Leaving the loop early pauses the replay, or closes it when the loop
   * started it.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    if (this.#iterating) throw new ReplayStateError('this replay is already being iterated');
    this.#iterating = true;
    let startedHere = false;
    try {
      if (this.#state === 'idle' || this.#state === 'ended') startedHere = this.start();
      for (;;) {
        const m = this.#iterQueue.shift();
        if (m !== undefined) {
          this.#taken();
          yield m;
          continue;
        }
        this.#releaseAcks();
        if (this.#error) throw this.#error;
        if (this.#state !== 'playing' && this.#state !== 'paused') return;
        await new Promise<void>((resolve) => (this.#iterWaiter = resolve));
      }
    } finally {
      this.#iterating = false;
      this.#iterQueue = [];
      this.#releaseAcks();
      // Left early (break, return, a throw in the loop body): a replay the
      // loop started is closed; one started before it is paused.
      if (this.#state === 'playing' || this.#state === 'paused') {
        if (startedHere) this.close();
        else this.pause();
      }
    }
  }

  #checkOpen(): void {
    if (this.#state === 'closed') throw new ReplayStateError('this replay is closed');
  }

  /** Drop what the iterator holds of a run that was rewound or moved. */
  #dropQueued(): void {
    this.#iterQueue = [];
    this.#releaseAcks();
  }

  #onMessages(messages: Message[], ack: () => void): void {
    if (!this.#iterating || messages.length === 0) {
      ack();
    } else {
      for (const m of messages) this.#iterQueue.push(m);
      // Backpressure: the batch stays unacknowledged until the iterator has
      // taken its last message, so the engine waits (shows as lag) instead
      // of memory growing.
      this.#iterBatches.push({ left: messages.length, ack });
      this.#wakeIterator();
    }
    if (this.listenerCount('message') > 0) for (const m of messages) this.emit('message', m);
  }

  /** Run a step/playUntil/advance; its promise settles when the replay pauses or ends. */
  #goal(run: () => boolean, state: 'playing' | 'paused'): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new ReplayStateError('this replay is closed'));
    if (this.#state === 'ended') return Promise.resolve();
    const wasIdle = this.#state === 'idle';
    let started: boolean;
    try {
      started = callNative(run);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!started) return Promise.resolve();
    if (wasIdle) this.#done ??= new Deferred();
    if (this.#pump) {
      this.#pump.start();
    }
    this.#state = state;
    // Held until the goal is reached, so that the process waits for it.
    this.#keepAlive.hold(true);
    this.#startProgress();
    const goal = new Deferred();
    this.#goals.push(goal);
    return goal.promise;
  }

  #onPaused(): void {
    if (this.#state === 'playing' || this.#state === 'paused') {
      this.#state = 'paused';
      this.#keepAlive.hold(false);
    }
    this.#settleGoals();
    this.emit('paused');
    this.#wakeIterator();
  }

  #settleGoals(err?: Error): void {
    for (const goal of this.#goals.splice(0)) {
      if (err) goal.reject(err);
      else goal.resolve();
    }
  }

  #startProgress(): void {
    if (this.#progressTimer !== undefined) return;
    this.#progressTimer = setInterval(() => {
      if (this.listenerCount('progress') > 0 && this.#state !== 'closed') this.emit('progress', this.progress());
    }, this.#progressMs);
    // The replay holds the event loop while it plays; the reports do not.
    this.#progressTimer.unref();
  }

  #stopProgress(): void {
    if (this.#progressTimer !== undefined) clearInterval(this.#progressTimer);
    this.#progressTimer = undefined;
    this.#lastSample = undefined;
  }

  #onEnded(event: 'end' | 'error', err: Error | undefined): void {
    this.#state = 'ended';
    this.#keepAlive.hold(false);
    this.#settleGoals(event === 'error' ? err : undefined);
    if (this.listenerCount('progress') > 0) this.emit('progress', this.progress());
    this.#stopProgress();
    if (event === 'error') {
      this.#error = err;
      this.#done?.reject(err!);
      this.#done = undefined;
      if (this.listenerCount('error') > 0) this.emit('error', err!);
    } else {
      this.#finish();
      this.emit('end');
    }
    this.#wakeIterator();
  }

  #finish(): void {
    this.#done?.resolve();
    this.#done = undefined;
    this.#wakeIterator();
  }

  /** The iterator took one message: acknowledge its batch if that was the last. */
  #taken(): void {
    const batch = this.#iterBatches[0];
    if (batch && --batch.left === 0) {
      this.#iterBatches.shift();
      batch.ack();
    }
  }

  /** Acknowledge every batch still held (the queue was emptied or dropped). */
  #releaseAcks(): void {
    for (const batch of this.#iterBatches.splice(0)) batch.ack();
  }

  #wakeIterator(): void {
    const wake = this.#iterWaiter;
    this.#iterWaiter = undefined;
    wake?.();
  }
}

/** Seconds given to a method: a finite number (core checks the range). */
function checkSeconds(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`'${name}' must be a finite number of seconds, got ${typeof value === 'number' ? value : typeof value}`);
  }
  return value;
}

class Deferred {
  resolve!: () => void;
  reject!: (err: Error) => void;
  readonly promise = new Promise<void>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor() {
    // A replay error is also reported through events and iterators: an
    // unobserved done promise must not crash the process.
    this.promise.catch(() => {});
  }
}
